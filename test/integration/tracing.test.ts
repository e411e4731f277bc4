/**
 * One trace per order across every process: the order service, the relay and each consumer export their spans to
 * an OTLP/HTTP receiver of this test's own (JSON encoding), as they would to a collector. The spans of one order
 * must form one tree: the order's HTTP span, under it the relay's publish of each event and the span of each
 * consumer that handled it, and under each consumer's span what its events caused in turn.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { HEADER } from '@saga/common/messaging/envelope-codec';
import { parseTraceparent } from '@saga/common/runtime/trace-context';
import { collect } from '../support/amqp';
import { createTestEnv, type TestEnv } from '../support/env';
import { killAll } from '../support/process';
import { sagaClient } from '../support/saga';
import { startStack, type Stack } from '../support/stack';
import { waitUntil } from '../support/wait';

type Span = {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
  links: { traceId: string; spanId: string }[];
};
// OTLP span kinds (opentelemetry-proto trace.proto).
const KIND: Record<number, string> = { 1: 'INTERNAL', 2: 'SERVER', 3: 'CLIENT', 4: 'PRODUCER', 5: 'CONSUMER' };
const TRACED = ['order', 'inventory', 'payment', 'cdc-relay'];

let env: TestEnv;
let stack: Stack;
let receiver: Server;
let sink: Awaited<ReturnType<typeof collect>>;
const spans: Span[] = [];
const saga = sagaClient(() => ({
  order: stack.services.order.url,
  inventory: stack.services.inventory.url,
  payment: stack.services.payment.url,
}));

/** OTLP/JSON ids are hex; base64 (the protobuf JSON mapping) is accepted too. */
const hex = (id: unknown) =>
  typeof id !== 'string' || id === '' ? '' : /^[0-9a-f]+$/.test(id) ? id : Buffer.from(id, 'base64').toString('hex');

/** A minimal OTLP/HTTP trace receiver: POST /v1/traces with an ExportTraceServiceRequest in JSON. */
function startReceiver(): Promise<Server> {
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/traces') return void res.writeHead(404).end();
      type Attr = { key: string; value: { stringValue?: string } };
      type Raw = {
        traceId: string;
        spanId: string;
        parentSpanId?: string;
        name: string;
        kind: number;
        links?: { traceId: string; spanId: string }[];
      };
      const request = JSON.parse(body) as {
        resourceSpans: { resource: { attributes: Attr[] }; scopeSpans: { spans: Raw[] }[] }[];
      };
      for (const rs of request.resourceSpans) {
        const service = rs.resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue ?? '?';
        for (const ss of rs.scopeSpans) {
          for (const s of ss.spans) {
            spans.push({
              service,
              traceId: hex(s.traceId),
              spanId: hex(s.spanId),
              parentSpanId: hex(s.parentSpanId),
              name: s.name,
              kind: s.kind,
              links: (s.links ?? []).map((l) => ({ traceId: hex(l.traceId), spanId: hex(l.spanId) })),
            });
          }
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

/** The spans of `traceId` under `rootParent` as indented lines "service KIND name", children sorted. */
function tree(traceId: string, rootParent: string): string[] {
  const mine = spans.filter((s) => s.traceId === traceId && TRACED.includes(s.service));
  const lines: string[] = [];
  const walk = (parent: string, depth: number) => {
    const children = mine
      .filter((s) => s.parentSpanId === parent)
      .sort((a, b) => `${a.service} ${a.name}`.localeCompare(`${b.service} ${b.name}`));
    for (const c of children) {
      lines.push(`${'  '.repeat(depth)}${c.service} ${KIND[c.kind]} ${c.name}`);
      walk(c.spanId, depth + 1);
    }
  };
  walk(rootParent, 0);
  return lines;
}

const CONFIRMED_TREE = [
  'order SERVER POST /orders',
  '  cdc-relay PRODUCER publish OrderPlaced',
  '  inventory CONSUMER process OrderPlaced',
  '    cdc-relay PRODUCER publish StockReserved',
  '    order CONSUMER process StockReserved',
  '    payment CONSUMER process StockReserved',
  '      cdc-relay PRODUCER publish PaymentAuthorized',
  '      order CONSUMER process PaymentAuthorized',
  '        cdc-relay PRODUCER publish OrderConfirmed',
  '        inventory CONSUMER process OrderConfirmed',
  '          cdc-relay PRODUCER publish StockCommitted',
];

beforeAll(async () => {
  env = await createTestEnv('tracing');
  receiver = await startReceiver();
  const otel = {
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`,
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    // Export every 100 ms instead of 5 s: the test waits for the spans, not for the batch timer.
    OTEL_BSP_SCHEDULE_DELAY: '100',
  };
  stack = await startStack(env, { relay: otel, order: otel, inventory: otel, payment: otel });
  sink = await collect(env.rabbitUrl, env.exchange);
});
afterAll(async () => {
  await sink?.close();
  await stack?.stop();
  await killAll();
  await new Promise((r) => receiver?.close(r));
  await env?.close();
});

describe('tracing across the saga', () => {
  it("continues the caller's trace: every event of the order carries it, and the spans of all processes form one tree", async () => {
    const caller = { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331' };
    const sku = await saga.product(5, 700);
    const customer = await saga.account(10_000);
    const orderId = await saga.place(customer, [{ sku, quantity: 1 }], {
      traceparent: `00-${caller.traceId}-${caller.spanId}-01`,
    });
    expect((await saga.finalOrder(orderId)).status).toBe('CONFIRMED');

    // Every event of the order carries the caller's trace id, each with the context of the step that caused it.
    const events = await waitUntil(() => {
      const m = sink.messages.filter((x) => x.correlationId === orderId);
      return m.some((x) => x.type === 'StockCommitted') ? m : undefined;
    });
    const contexts = events.map((m) => parseTraceparent(m.headers[HEADER.traceparent]));
    expect(contexts.map((c) => c?.traceId)).toEqual(events.map(() => caller.traceId));
    expect(new Set(contexts.map((c) => c?.spanId)).size).toBe(events.length);

    const lines = await waitUntil(
      () => {
        const t = tree(caller.traceId, caller.spanId);
        return t.length >= CONFIRMED_TREE.length ? t : undefined;
      },
      { message: 'the spans of the order', timeoutMs: 20_000 },
    ).catch(() => tree(caller.traceId, caller.spanId));
    expect(lines).toEqual(CONFIRMED_TREE);

    // Each event's traceparent names the span that produced it, and the relay's publish span links to that span.
    const byId = new Map(spans.map((s) => [s.spanId, s]));
    for (const [i, m] of events.entries()) {
      const cause = events.find((e) => e.id === m.headers[HEADER.causationId]);
      expect(byId.get(contexts[i]!.spanId)?.name).toBe(cause ? `process ${cause.type}` : 'POST /orders');
      const publish = spans.find(
        (s) => s.service === 'cdc-relay' && s.name === `publish ${m.type}` && s.traceId === caller.traceId,
      );
      expect(publish?.parentSpanId).toBe(contexts[i]!.spanId);
      expect(publish?.links).toEqual([{ traceId: caller.traceId, spanId: contexts[i]!.spanId }]);
    }

    // Log lines of the request carry its trace and span ids.
    const placed = stack.services.order.proc.logs.find((l) => l.msg === 'order placed' && l.orderId === orderId);
    const server = spans.find(
      (s) => s.service === 'order' && s.name === 'POST /orders' && s.traceId === caller.traceId,
    )!;
    expect(placed).toMatchObject({ trace_id: caller.traceId, span_id: server.spanId });
  });

  it('starts a trace for a request without traceparent, shared by every event of that order', async () => {
    const sku = await saga.product(5, 700);
    const customer = await saga.account(100);
    const orderId = await saga.place(customer, [{ sku, quantity: 1 }]);
    expect((await saga.finalOrder(orderId)).status).toBe('CANCELLED');
    const events = await waitUntil(() => {
      const m = sink.messages.filter((x) => x.correlationId === orderId);
      return m.some((x) => x.type === 'StockReleased') ? m : undefined;
    });
    const traceIds = new Set(events.map((m) => parseTraceparent(m.headers[HEADER.traceparent])?.traceId));
    expect(traceIds.size).toBe(1);
    const [traceId] = [...traceIds];
    const server = await waitUntil(() => spans.find((s) => s.traceId === traceId && s.kind === 2));
    expect(server).toMatchObject({ service: 'order', name: 'POST /orders', parentSpanId: '' });
  });
});
