/** The relay's reading of a replication stream's CopyData messages: XLogData and keepalives, as PostgreSQL frames them. */
import { copyDataHandler, type WalMessage } from '../../src/wal-source';

/** XLogData: 'w', start LSN, current end of WAL, send time (8 bytes each), then the pgoutput message. */
const xlogData = (data: Buffer) => Buffer.concat([Buffer.from('w'), Buffer.alloc(24, 0xab), data]);
/** Primary keepalive: 'k', end of WAL, send time (8 bytes each), reply requested (1 byte). */
function keepalive(walEnd: bigint, reply: boolean): Buffer {
  const b = Buffer.alloc(18);
  b[0] = 0x6b;
  b.writeBigUInt64BE(walEnd, 1);
  b.writeBigUInt64BE(123456789n, 9);
  b[17] = reply ? 1 : 0;
  return b;
}

function harness() {
  const parsed: Buffer[] = [];
  const messages: WalMessage[] = [];
  const keepalives: [bigint, boolean][] = [];
  let heard = 0;
  const handle = copyDataHandler(
    {
      parse: (data) => {
        parsed.push(Buffer.from(data));
        return { tag: 'commit' };
      },
    },
    { onMessage: (m) => messages.push(m), onKeepalive: (lsn, reply) => keepalives.push([lsn, reply]) },
    () => heard++,
  );
  return { handle, parsed, messages, keepalives, heard: () => heard };
}

describe('replication CopyData', () => {
  it("hands an XLogData's pgoutput message, and only it, to the plugin", () => {
    const t = harness();
    const data = Buffer.from([0x49, 1, 2, 3, 4, 5]);
    t.handle({ chunk: xlogData(data) });
    expect(t.parsed).toEqual([data]);
    expect(t.messages).toEqual([{ tag: 'commit' }]);
    expect(t.keepalives).toEqual([]);
  });

  it("reports a keepalive's end of WAL as a 64-bit position, and whether it asks for a reply", () => {
    const t = harness();
    t.handle({ chunk: keepalive(0x1_0000_0002n, false) });
    t.handle({ chunk: keepalive(0xffff_ffff_ffff_fff0n, true) });
    expect(t.keepalives).toEqual([
      [0x1_0000_0002n, false],
      [0xffff_ffff_ffff_fff0n, true],
    ]);
    expect(t.parsed).toEqual([]);
  });

  it('turns a keepalive too short to read into an undecodable message, which ends the session', () => {
    const t = harness();
    t.handle({ chunk: keepalive(5n, true).subarray(0, 17) });
    expect(t.messages).toHaveLength(1);
    expect(t.messages[0]).toMatchObject({ tag: 'undecodable', error: expect.any(Error) });
    expect(t.keepalives).toEqual([]);
  });

  it('counts every message as heard from the server, and ignores a type it does not know', () => {
    const t = harness();
    t.handle({ chunk: xlogData(Buffer.from([0x42])) });
    t.handle({ chunk: keepalive(1n, false) });
    t.handle({ chunk: Buffer.from('zzzz') });
    expect(t.heard()).toBe(3);
    expect(t.messages).toHaveLength(1);
    expect(t.keepalives).toHaveLength(1);
  });
});
