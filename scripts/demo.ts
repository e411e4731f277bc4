/**
 * npm run demo (against a running stack): one order that succeeds, one out of stock, one declined; prints each
 * order's timeline as it unfolds, read from the order's server-sent event stream.
 */
import { devAuthHeader } from '@saga/common/http/dev-token';
import { answerArgs } from '@saga/common/runtime/cli-args';
import { SeedEnv, urls } from './demo-data';

answerArgs({
  name: 'npm run demo',
  summary: 'against a running stack: one order that succeeds, one out of stock, one declined, each followed live',
  env: SeedEnv,
});

const u = urls();

async function follow(label: string, customerId: string, items: { sku: string; quantity: number }[]) {
  // The order API takes the customer from a bearer token: the demo mints one of the development issuer, which a
  // service without AUTH_ISSUER (npm start, compose) accepts.
  const auth = devAuthHeader(customerId);
  const res = await fetch(`${u.order}/orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...auth },
    body: JSON.stringify({ customerId, items }),
  });
  // Errors are RFC 9457 problem details: `detail` says what went wrong, `errors` which fields.
  const body = (await res.json()) as {
    orderId?: string;
    detail?: string;
    errors?: { path: string; message: string }[];
  };
  if (res.status !== 202 || !body.orderId) {
    const fields = (body.errors ?? []).map((e) => `${e.path}: ${e.message}`).join('; ');
    throw new Error(`${label}: ${res.status} ${body.detail ?? JSON.stringify(body)}${fields ? ` (${fields})` : ''}`);
  }
  const started = Date.now();
  const lines: string[] = [
    `${label}: order ${body.orderId} by ${customerId}: ${items.map((i) => `${i.quantity} x ${i.sku}`).join(', ')}`,
  ];
  const stream = await fetch(`${u.order}/orders/${body.orderId}/events`, { headers: auth });
  const reader = stream.body!.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const event = /^event: (.*)$/m.exec(block)?.[1];
      const data = /^data: (.*)$/m.exec(block)?.[1];
      if (!event || !data) continue;
      const d = JSON.parse(data);
      if (event === 'end') {
        lines.push(
          `  => ${d.status}${d.reason ? ` (${d.reason})` : ''}, total ${d.totalCents === null ? '-' : `$${(d.totalCents / 100).toFixed(2)}`}`,
        );
      } else {
        lines.push(`  +${String(Date.now() - started).padStart(4)} ms  ${event}${d.reason ? ` (${d.reason})` : ''}`);
      }
    }
  }
  console.log(lines.join('\n'));
}

async function main() {
  await follow('1. succeeds', 'alice', [
    { sku: 'mechanical-keyboard', quantity: 1 },
    { sku: 'wireless-mouse', quantity: 1 },
  ]);
  await follow('2. out of stock', 'alice', [{ sku: 'usb-c-hub', quantity: 11 }]);
  await follow('3. declined: over the $1000 limit', 'alice', [{ sku: '4k-monitor', quantity: 3 }]);
}

main().catch((err) => {
  console.error(`demo failed: ${err instanceof Error ? err.message : String(err)} (is the stack running? npm start)`);
  process.exit(1);
});
