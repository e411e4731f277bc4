/**
 * W3C Trace Context `traceparent` values (https://www.w3.org/TR/trace-context/#traceparent-header), without
 * OpenTelemetry: events must carry a trace id even when no tracing SDK runs, so ids are made here, cheaply.
 */
import { randomFillSync } from 'node:crypto';

export type TraceContext = { traceId: string; spanId: string; flags: string };

// version "00"; other versions are read by their first four fields, as the spec asks of a parser that knows only 00.
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);

/** The context in a `traceparent` value; undefined when it is absent or invalid (then a new trace starts). */
export function parseTraceparent(value: unknown): TraceContext | undefined {
  if (typeof value !== 'string') return undefined;
  const m = TRACEPARENT.exec(value);
  if (!m) return undefined;
  const [, version, traceId, spanId, flags, rest] = m;
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined;
  if (traceId === ZERO_TRACE || spanId === ZERO_SPAN) return undefined;
  return { traceId: traceId!, spanId: spanId!, flags: flags! };
}

export function formatTraceparent(c: TraceContext): string {
  return `00-${c.traceId}-${c.spanId}-${c.flags}`;
}

/** The trace id of a value `formatTraceparent` made. */
export const traceIdOf = (traceparent: string): string => traceparent.slice(3, 35);
/** The span id of a value `formatTraceparent` made. */
export const spanIdOf = (traceparent: string): string => traceparent.slice(36, 52);

// Random bytes drawn 4 KiB at a time: one system call per ~170 spans instead of one per id.
const pool = Buffer.alloc(4096);
let offset = pool.length;
function randomHex(bytes: number): string {
  if (offset + bytes > pool.length) {
    randomFillSync(pool);
    offset = 0;
  }
  const hex = pool.toString('hex', offset, offset + bytes);
  offset += bytes;
  // All zeros is invalid in both fields; 2^-64 at worst, but a parser downstream would drop the context.
  return /[^0]/.test(hex) ? hex : randomHex(bytes);
}

export const newTraceId = (): string => randomHex(16);
export const newSpanId = (): string => randomHex(8);

/**
 * A span's context under `parent` (same trace, new span id, the parent's sampling flag), or the root of a new trace
 * when there is no valid parent. A root made without a tracing SDK is marked not sampled ("00"): nothing recorded
 * it, and a sampler that follows its parent then records nothing for it either.
 */
export function childContext(parent?: TraceContext, rootFlags = '00'): TraceContext {
  return parent
    ? { traceId: parent.traceId, spanId: newSpanId(), flags: parent.flags }
    : { traceId: newTraceId(), spanId: newSpanId(), flags: rootFlags };
}
