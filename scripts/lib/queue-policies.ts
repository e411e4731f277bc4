/**
 * Apply the operator-queue bounds (queuePolicies) to the broker's vhost: through the management HTTP API when
 * RABBITMQ_MANAGEMENT_URL is set (docker compose, a managed broker), otherwise with rabbitmqctl on this machine.
 * A policy, unlike queue arguments, also reaches queues that already exist: an upgraded broker gets the bounds
 * from the next setup.
 */
import { rabbitmqctl } from './rabbitmqctl';
import { vhostOf } from '@saga/common/messaging/broker';
import { queuePolicies } from '@saga/common/messaging/operator-queues';

export async function applyQueuePolicies(
  c: {
    RABBITMQ_URL: string;
    EVENTS_EXCHANGE: string;
    RABBITMQ_MANAGEMENT_URL?: string;
    MONITOR_QUEUE_MAX_LENGTH?: number;
  },
  say: (m: string) => void,
): Promise<void> {
  const vhost = vhostOf(c.RABBITMQ_URL);
  for (const p of queuePolicies(c.EVENTS_EXCHANGE, c.MONITOR_QUEUE_MAX_LENGTH)) {
    if (c.RABBITMQ_MANAGEMENT_URL) {
      const base = new URL(c.RABBITMQ_MANAGEMENT_URL);
      const auth = Buffer.from(`${decodeURIComponent(base.username)}:${decodeURIComponent(base.password)}`).toString(
        'base64',
      );
      base.username = '';
      base.password = '';
      const url = new URL(
        `api/policies/${encodeURIComponent(vhost)}/${encodeURIComponent(p.name)}`,
        base.href.endsWith('/') ? base.href : `${base.href}/`,
      );
      const res = await fetch(url, {
        method: 'PUT',
        headers: { 'content-type': 'application/json', authorization: `Basic ${auth}` },
        body: JSON.stringify({ pattern: p.pattern, definition: p.definition, 'apply-to': 'queues', priority: 10 }),
      });
      if (!res.ok) throw new Error(`management API ${res.status} setting policy ${p.name}: ${await res.text()}`);
    } else {
      rabbitmqctl(
        [
          'set_policy',
          '-p',
          vhost,
          '--apply-to',
          'queues',
          '--priority',
          '10',
          p.name,
          p.pattern,
          JSON.stringify(p.definition),
        ],
        `cannot set the queue-bound policy ${p.name}`,
      );
    }
    say(`rabbitmq: policy ${p.name} on ${p.pattern}: ${JSON.stringify(p.definition)}`);
  }
}
