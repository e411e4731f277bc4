import net from 'node:net';

/**
 * A TCP proxy of the test's own between a client and a server, to break the link in ways a real network does:
 * `blackhole()` keeps every connection open but drops all bytes both ways (a half-open link: no FIN, no RST), for
 * old and new connections alike; `restore()` forwards again (connections that were blackholed stay useless, as after
 * a real partition). `delayMs` holds each server->client chunk back (a slow broker's confirms), order kept.
 */
export async function startTcpProxy(target: { host: string; port: number }, opts: { delayMs?: number } = {}) {
  let blackholed = false;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(target.port, target.host);
    sockets.add(client);
    sockets.add(upstream);
    let dead = blackholed;
    const forward = (from: net.Socket, to: net.Socket, delayMs: number) => {
      let chain = Promise.resolve();
      from.on('data', (chunk) => {
        if (blackholed) dead = true;
        if (dead) return;
        if (delayMs > 0) {
          from.pause();
          chain = chain
            .then(() => new Promise((r) => setTimeout(r, delayMs)))
            .then(() => {
              if (!dead && !to.destroyed) to.write(chunk);
              from.resume();
            });
        } else {
          to.write(chunk);
        }
      });
    };
    forward(client, upstream, 0);
    forward(upstream, client, opts.delayMs ?? 0);
    const close = () => {
      if (dead) return; // a half-open link says nothing
      client.destroy();
      upstream.destroy();
    };
    client.on('close', close);
    upstream.on('close', close);
    client.on('error', () => undefined);
    upstream.on('error', () => undefined);
    client.on('close', () => sockets.delete(client));
    upstream.on('close', () => sockets.delete(upstream));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    blackhole: () => {
      blackholed = true;
    },
    restore: () => {
      blackholed = false;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
