import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import pg from 'pg';
import { ADMIN_URL, rabbitmqctl } from './env';
import { waitUntil } from './wait';

/** Stop or start the local PostgreSQL server (Debian cluster), as an operator or a crash would. */
export async function postgres(action: 'stop' | 'start'): Promise<void> {
  const version = readdirSync('/etc/postgresql')[0]!;
  execFileSync(
    'pg_ctlcluster',
    ['--skip-systemctl-redirect', version, 'main', action, ...(action === 'stop' ? ['-m', 'fast'] : [])],
    { stdio: 'ignore' },
  );
  if (action === 'start') {
    await waitUntil(
      async () => {
        const c = new pg.Client({ connectionString: ADMIN_URL });
        c.on('error', () => undefined);
        await c.connect();
        await c.end();
        return true;
      },
      { timeoutMs: 60_000, message: 'postgres accepting connections' },
    );
  }
}

/** Stop or start the RabbitMQ application (the node stays up, every connection drops). */
export function rabbit(action: 'stop_app' | 'start_app'): void {
  rabbitmqctl(action);
  if (action === 'start_app') rabbitmqctl('await_startup', '--timeout', '120');
}
