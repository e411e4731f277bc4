/** The tests' free-port helper: servers started side by side by one test never get the same port. */
import { freePort } from '../support/pg-cluster';

describe('free ports for test servers', () => {
  it('never hands out the same port twice in one process, though each probe is closed before the next', async () => {
    const ports: number[] = [];
    for (let i = 0; i < 300; i++) ports.push(await freePort());
    expect(new Set(ports).size).toBe(ports.length);
    expect(ports.every((p) => p > 0 && p < 65536)).toBe(true);
  });
});
