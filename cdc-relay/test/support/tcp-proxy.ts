import net from 'node:net';

/**
 * A TCP proxy of the test's own between a client and a server, to break the link in ways a real network does:
 * `blackhole()` keeps every connection open but drops all bytes both ways (a half-open link: no FIN, no RST), for
 * old and new connections alike; `restore()` forwards again (connections that were blackholed stay useless, as after
 * a real partition); `cut()` closes every open connection at once. `delayMs` holds each server->client chunk back (a slow broker's confirms), order kept.
 */
export async function startTcpProxy(target: { host: string; port: number }, opts: { delayMs?: number } = {}) {
  let blackholed = false;
  let accepted = 0;
  const sockets = new Set<net.Socket>();
  /** Every open connection's kill switch: a blackhole makes each one useless at once, even if it carried nothing. */
  const links = new Set<{ dead: boolean }>();
  // allowHalfOpen: a FIN is passed on while the link lives and swallowed once it is dead (no automatic answer).
  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    accepted++;
    const upstream = net.connect({ port: target.port, host: target.host, allowHalfOpen: true });
    sockets.add(client);
    sockets.add(upstream);
    const link = { dead: blackholed };
    links.add(link);
    const forward = (from: net.Socket, to: net.Socket, delayMs: number) => {
      let chain = Promise.resolve();
      from.on('data', (chunk) => {
        if (blackholed) link.dead = true;
        if (link.dead) return;
        if (delayMs > 0) {
          from.pause();
          chain = chain
            .then(() => new Promise((r) => setTimeout(r, delayMs)))
            .then(() => {
              if (!link.dead && !to.destroyed) to.write(chunk);
              from.resume();
            });
        } else {
          to.write(chunk);
        }
      });
      from.on('end', () => {
        if (blackholed) link.dead = true;
        if (!link.dead) void chain.then(() => to.end());
      });
    };
    forward(client, upstream, 0);
    forward(upstream, client, opts.delayMs ?? 0);
    // A half-open link says nothing: when one end goes, the other is not told (it finds out by its own timeouts).
    // Sockets are destroyed, never left to a graceful end that a dead peer would not answer; close() ends the rest.
    const close = () => {
      links.delete(link);
      if (link.dead) return;
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
    /** Connections accepted so far (a reconnect shows as one more). */
    accepted: () => accepted,
    blackhole: () => {
      blackholed = true;
      for (const l of links) l.dead = true;
    },
    restore: () => {
      blackholed = false;
    },
    /** Cut every open connection at once (both ends see it closed, as after a reset); new ones pass. */
    cut: () => {
      for (const s of sockets) s.destroy();
    },
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}
