import {
  childContext,
  formatTraceparent,
  newSpanId,
  newTraceId,
  parseTraceparent,
} from '../../src/runtime/trace-context';
import { requestSpan, startSpan, tracingConfigured } from '../../src/runtime/tracing';

const PARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

describe('W3C traceparent', () => {
  it('reads the example of the specification and writes it back unchanged', () => {
    const c = parseTraceparent(PARENT);
    expect(c).toEqual({ traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', flags: '01' });
    expect(formatTraceparent(c!)).toBe(PARENT);
  });

  it.each([
    ['absent', undefined],
    ['not a string', 42],
    ['upper-case hex', PARENT.toUpperCase()],
    ['an all-zero trace id', '00-00000000000000000000000000000000-00f067aa0ba902b7-01'],
    ['an all-zero parent id', '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01'],
    ['version ff', 'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'],
    ['version 00 with trailing fields', `${PARENT}-extra`],
    ['a short trace id', '00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01'],
  ])('starts a new trace when the value is %s', (_what, value) => {
    expect(parseTraceparent(value)).toBeUndefined();
  });

  it('reads the first four fields of a later version', () => {
    expect(parseTraceparent('01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next')?.spanId).toBe(
      '00f067aa0ba902b7',
    );
  });

  it('makes well-formed, distinct ids', () => {
    const traces = new Set(Array.from({ length: 500 }, newTraceId));
    const spans = new Set(Array.from({ length: 500 }, newSpanId));
    expect(traces.size).toBe(500);
    expect(spans.size).toBe(500);
    for (const t of traces) expect(t).toMatch(/^[0-9a-f]{32}$/);
    for (const s of spans) expect(s).toMatch(/^[0-9a-f]{16}$/);
  });

  it('continues the parent: same trace and sampling flag, new span id', () => {
    const parent = parseTraceparent(PARENT)!;
    const child = childContext(parent);
    expect(child.traceId).toBe(parent.traceId);
    expect(child.flags).toBe('01');
    expect(child.spanId).not.toBe(parent.spanId);
  });

  it('marks a root made without a tracing SDK as not sampled', () => {
    expect(childContext(undefined).flags).toBe('00');
  });
});

describe('tracing without an exporter', () => {
  it('is off unless the standard variables configure an exporter', () => {
    expect(tracingConfigured({})).toBe(false);
    expect(tracingConfigured({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' })).toBe(true);
    expect(tracingConfigured({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://collector:4318/v1/traces' })).toBe(true);
    expect(tracingConfigured({ OTEL_TRACES_EXPORTER: 'console' })).toBe(true);
    expect(
      tracingConfigured({ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }),
    ).toBe(false);
    expect(tracingConfigured({ OTEL_SDK_DISABLED: 'true', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' })).toBe(
      false,
    );
  });

  it('still gives every message a span context in its parent trace, and log fields naming it', () => {
    const span = startSpan('process OrderPlaced', { parent: PARENT, kind: 'consumer' });
    expect(span.context.traceId).toBe('4bf92f3577b34da6a3ce929d0e0e4736');
    expect(span.traceparent).toBe(`00-4bf92f3577b34da6a3ce929d0e0e4736-${span.context.spanId}-01`);
    expect(span.logFields).toEqual({ trace_id: span.context.traceId, span_id: span.context.spanId });
    expect(() => span.end('failed')).not.toThrow();
  });

  it('continues the caller of an HTTP request, or starts a trace when its header is invalid', () => {
    expect(requestSpan(PARENT).context.traceId).toBe('4bf92f3577b34da6a3ce929d0e0e4736');
    const fresh = requestSpan('garbage');
    expect(parseTraceparent(fresh.traceparent)).toEqual(fresh.context);
    expect(fresh.context.traceId).not.toBe('4bf92f3577b34da6a3ce929d0e0e4736');
  });
});
