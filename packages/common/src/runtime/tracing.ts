/**
 * Tracing with OpenTelemetry, and trace context without it.
 *
 * The SDK runs only when an exporter is configured with the standard variables (`OTEL_EXPORTER_OTLP_ENDPOINT`,
 * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_TRACES_EXPORTER`; `OTEL_SDK_DISABLED=true` wins): otherwise it is not
 * even loaded, and `startSpan` only makes W3C ids (one slice of a random buffer), so every event still carries its
 * order's trace id at no measurable cost. Only traces are exported: metrics stay on /metrics, logs on stdout.
 */
import { settleWithin } from './settle';
import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type SpanContext,
  type Tracer,
} from '@opentelemetry/api';
import { childContext, formatTraceparent, parseTraceparent, type TraceContext } from './trace-context';

export type SpanKindName = 'server' | 'producer' | 'consumer' | 'internal';
const KIND: Record<SpanKindName, SpanKind> = {
  server: SpanKind.SERVER,
  producer: SpanKind.PRODUCER,
  consumer: SpanKind.CONSUMER,
  internal: SpanKind.INTERNAL,
};

/** A span, recorded or not: its W3C context is there either way, to be written into the outbox rows it causes. */
export type TraceSpan = {
  context: TraceContext;
  /** `context` as a `traceparent` value. */
  traceparent: string;
  /** The log fields of this span (`trace_id`, `span_id`). */
  logFields: { trace_id: string; span_id: string };
  /** End the span; with `error`, as failed (the message says why). Only the first call counts. */
  end: (error?: string, attributes?: Attributes) => void;
};

export type SpanOptions = {
  /** The `traceparent` this span continues; absent or invalid starts a new trace. */
  parent?: unknown;
  kind: SpanKindName;
  /** Also link to the parent: the span that created the message (OpenTelemetry's messaging conventions). */
  linkParent?: boolean;
  attributes?: Attributes;
};

/** Whether the environment turns export on (the standard OpenTelemetry variables). */
export function tracingConfigured(env: Record<string, string | undefined> = process.env): boolean {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return false;
  const exporters = env.OTEL_TRACES_EXPORTER?.split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (exporters && exporters.length > 0) return !exporters.includes('none');
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim() || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim());
}

let tracer: Tracer | undefined;
let sdk: { shutdown: () => Promise<void> } | undefined;

/** Requests that are never traced: probes and scrapes would outnumber the orders. */
const OPS_PATH = /^\/(healthz|readyz|metrics)(\?|$)/;

/**
 * Start the OpenTelemetry Node SDK for `service` when the environment configures an exporter; a no-op otherwise.
 * `http`: trace incoming HTTP requests (server spans that continue the caller's `traceparent`). Call it before the
 * HTTP server is created. Answers whether tracing is on.
 */
export function startTracing(
  service: string,
  o: { http?: boolean; env?: Record<string, string | undefined> } = {},
): boolean {
  if (tracer) return true;
  if (!tracingConfigured(o.env)) return false;
  // Loaded here, not imported: a process without an exporter never loads the SDK.
  /* eslint-disable @typescript-eslint/no-require-imports */
  const { NodeSDK } = require('@opentelemetry/sdk-node') as typeof import('@opentelemetry/sdk-node');
  const instrumentations = [];
  if (o.http) {
    const { HttpInstrumentation } =
      require('@opentelemetry/instrumentation-http') as typeof import('@opentelemetry/instrumentation-http');
    instrumentations.push(
      new HttpInstrumentation({
        ignoreIncomingRequestHook: (req) => OPS_PATH.test(req.url ?? ''),
        // The services make no HTTP calls of their own; the exporter's requests must not be traced either.
        disableOutgoingRequestInstrumentation: true,
      }),
    );
  }
  const s = new NodeSDK({
    serviceName: process.env.OTEL_SERVICE_NAME ?? service,
    instrumentations,
    metricReaders: [],
    logRecordProcessors: [],
  });
  s.start();
  // The instrumentation patches node:http when it is required after start; the server is created later on it.
  require('node:http');
  /* eslint-enable @typescript-eslint/no-require-imports */
  sdk = s;
  tracer = trace.getTracer('saga');
  return true;
}

/**
 * Export what is buffered and stop the SDK (on shutdown, after the last span ended). Bounded by `withinMs`: an
 * unreachable collector (the exporter waits 10 s per attempt) must not push a clean stop past SHUTDOWN_TIMEOUT_MS;
 * the spans still buffered then are lost, the events are not.
 */
export async function stopTracing(withinMs = 3000): Promise<void> {
  const s = sdk;
  sdk = undefined;
  tracer = undefined;
  if (!s) return;
  await settleWithin(s.shutdown(), withinMs, 'tracing shutdown').catch(() => undefined);
}

export const tracingOn = (): boolean => tracer !== undefined;

const fieldsOf = (c: TraceContext) => ({ trace_id: c.traceId, span_id: c.spanId });
const flagsOf = (sc: SpanContext) => (sc.traceFlags & 1 ? '01' : '00');
const NOOP_END = () => undefined;

/**
 * A span continuing `parent`. With tracing off: a new span id in the parent's trace (or a new trace), nothing
 * recorded. With tracing on: a recorded span (as the sampler decides) whose context is the same kind of value.
 */
export function startSpan(name: string, o: SpanOptions): TraceSpan {
  const parent = parseTraceparent(o.parent);
  if (!tracer) {
    const context = childContext(parent);
    return { context, traceparent: formatTraceparent(context), logFields: fieldsOf(context), end: NOOP_END };
  }
  const parentSc: SpanContext | undefined = parent && {
    traceId: parent.traceId,
    spanId: parent.spanId,
    traceFlags: parseInt(parent.flags, 16),
    isRemote: true,
  };
  const span = tracer.startSpan(
    name,
    {
      kind: KIND[o.kind],
      attributes: o.attributes,
      links: o.linkParent && parentSc ? [{ context: parentSc }] : undefined,
    },
    parentSc ? trace.setSpanContext(ROOT_CONTEXT, parentSc) : ROOT_CONTEXT,
  );
  const sc = span.spanContext();
  const context = { traceId: sc.traceId, spanId: sc.spanId, flags: flagsOf(sc) };
  let ended = false;
  return {
    context,
    traceparent: formatTraceparent(context),
    logFields: fieldsOf(context),
    end(error, attributes) {
      if (ended) return;
      ended = true;
      if (attributes) span.setAttributes(attributes);
      if (error !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: error });
      span.end();
    },
  };
}

/**
 * The context of the span an HTTP request runs in: the instrumentation's server span when tracing is on, else a
 * context continuing the caller's `traceparent` header (or a new trace). `name`, present only when a span is
 * recorded, names it after its route once express matched one.
 */
export function requestSpan(header: unknown): {
  context: TraceContext;
  traceparent: string;
  name?: (method: string, route: string) => void;
} {
  const active = tracer ? trace.getActiveSpan() : undefined;
  const sc = active?.spanContext();
  if (active && sc && trace.isSpanContextValid(sc)) {
    const context = { traceId: sc.traceId, spanId: sc.spanId, flags: flagsOf(sc) };
    return {
      context,
      traceparent: formatTraceparent(context),
      name: (method, route) => {
        active.updateName(`${method} ${route}`);
        active.setAttribute('http.route', route);
      },
    };
  }
  const context = childContext(parseTraceparent(header));
  return { context, traceparent: formatTraceparent(context) };
}
