import net from 'node:net';

/**
 * A TCP proxy of the test's own between a client and a server, to break the link as a network or an outage does:
 * - `cut()`: every open connection is reset and new ones are reset at once (the server is down or unreachable);
 * - `blackhole()`: every connection stays open but no byte passes either way (a half-open link: no FIN, no RST);
 *   connections made while it lasts are accepted and stay silent;
 * - `restore()`: forward again (blackholed connections stay useless, as after a real partition).
 */
export async function startTcpProxy(target: { host: string; port: number }) {
  let mode: 'forward' | 'cut' | 'blackhole' | 'stall' = 'forward';
  /** Connections accepted while stalled: their bytes wait, and flow once `restore()` is called. */
  const stalled: net.Socket[] = [];
  let accepted = 0;
  const links = new Set<{ client: net.Socket; upstream?: net.Socket; dead: boolean }>();
  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    accepted++;
    client.on('error', () => undefined);
    if (mode === 'cut') return void client.resetAndDestroy();
    if (mode === 'stall') {
      client.pause();
      stalled.push(client);
      return;
    }
    connectUpstream(client);
  });
  function connectUpstream(client: net.Socket) {
    const link: { client: net.Socket; upstream?: net.Socket; dead: boolean } = { client, dead: mode === 'blackhole' };
    links.add(link);
    client.on('close', () => {
      // A dead link's far side is not told (dropDead() tells it later), so it stays tracked.
      if (link.dead) return;
      links.delete(link);
      link.upstream?.destroy();
    });
    if (link.dead) return; // accepted, and silent
    const upstream = net.connect({ port: target.port, host: target.host, allowHalfOpen: true });
    link.upstream = upstream;
    upstream.on('error', () => undefined);
    upstream.on('close', () => {
      if (!link.dead) client.destroy();
    });
    const forward = (from: net.Socket, to: net.Socket) => {
      from.on('data', (chunk) => {
        if (!link.dead) to.write(chunk);
      });
      from.on('end', () => {
        if (!link.dead) to.end();
      });
    };
    forward(client, upstream);
    forward(upstream, client);
    client.resume();
  }
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    /** Connections accepted so far (a reconnect shows as one more). */
    accepted: () => accepted,
    /** Connections open now (client side). */
    open: () => links.size,
    cut() {
      mode = 'cut';
      for (const l of links) {
        l.dead = true;
        l.client.resetAndDestroy();
        l.upstream?.resetAndDestroy();
      }
    },
    blackhole() {
      mode = 'blackhole';
      for (const l of links) l.dead = true;
    },
    restore() {
      mode = 'forward';
      for (const client of stalled.splice(0)) if (!client.destroyed) connectUpstream(client);
    },
    /** Reset the connections a blackhole or a stall made useless, as a network's timeouts finally would. */
    dropDead() {
      for (const l of links) {
        if (!l.dead) continue;
        links.delete(l);
        l.client.resetAndDestroy();
        l.upstream?.resetAndDestroy();
      }
    },
    /** New connections wait (a slow network); the open ones are reset (the link was lost). */
    stall() {
      mode = 'stall';
      for (const l of links) {
        l.dead = true;
        l.client.resetAndDestroy();
        l.upstream?.resetAndDestroy();
      }
    },
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const l of links) {
        l.client.destroy();
        l.upstream?.destroy();
      }
      await closed;
    },
  };
}

export type TcpProxy = Awaited<ReturnType<typeof startTcpProxy>>;

/** `url` with its host and port replaced by the proxy's. */
export function throughProxy(url: string, proxy: { port: number }): string {
  const u = new URL(url);
  u.hostname = '127.0.0.1';
  u.port = String(proxy.port);
  return u.toString();
}

/** A proxy in front of the server of an amqp:// or postgres:// URL (its default port when the URL names none). */
export function startTcpProxyFor(url: string) {
  const u = new URL(url);
  const defaultPort = u.protocol === 'amqps:' ? 5671 : u.protocol === 'amqp:' ? 5672 : 5432;
  return startTcpProxy({ host: u.hostname, port: Number(u.port || defaultPort) });
}
