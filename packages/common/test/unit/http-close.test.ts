/**
 * Closing a listener while a client keeps its connection alive and busy (a dashboard that polls, a proxy's pool):
 * the close must not wait for the client to stop.
 */
import { Agent, request } from 'node:http';
import express from 'express';
import { listen } from '../../src/runtime/ops';
import { settleWithin } from '../../src/runtime/settle';

describe('closing an HTTP listener', () => {
  it('ends even while a keep-alive client sends request after request on one connection', async () => {
    const app = express();
    let requests = 0;
    let third!: () => void;
    const atThird = new Promise<void>((r) => (third = r));
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    app.get('/slow', (_req, res) => {
      // The third request waits until the test has begun the close.
      if (++requests === 3) {
        third();
        void released.then(() => res.json({ ok: true }));
      } else res.json({ ok: true });
    });
    const { server, close } = await listen(app, 0, '127.0.0.1');
    const port = (server.address() as { port: number }).port;
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const answers: { connection: string | undefined; socket: unknown }[] = [];
    let polling = true;
    const get = () =>
      new Promise<void>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path: '/slow', agent }, (res) => {
          answers.push({ connection: res.headers.connection, socket: res.socket });
          res.resume();
          res.on('end', resolve);
        });
        req.on('error', reject);
        req.end();
      });
    // The client asks again the moment an answer comes, on the same connection, until it is refused.
    const client = (async () => {
      while (polling) await get().catch(() => (polling = false));
    })();
    try {
      await atThird;
      const closing = close();
      release();
      await settleWithin(closing, 5_000, 'close with a busy keep-alive client');
      await client; // its next request is refused: the listener is gone
      expect(answers.map((a) => a.connection)).toEqual(['keep-alive', 'keep-alive', 'close']);
      expect(new Set(answers.map((a) => a.socket)).size).toBe(1); // one connection, kept alive until the close
    } finally {
      polling = false;
      await client;
      agent.destroy();
    }
  });
});
