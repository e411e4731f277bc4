/**
 * The checks of an outbox row before it is encoded as an event: its columns have the shape of an event, and it
 * does not claim an aggregate type or event type that belongs to another source.
 */
import { EventCatalog, isEventType } from '../contracts/catalog';

export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const WORD = /^[A-Za-z0-9_.-]{1,200}$/;

/** A JSON object column (as bytes, text or parsed), parsed; undefined when it is not one. */
export function parseObject(v: unknown): Record<string, unknown> | undefined {
  if (Buffer.isBuffer(v)) v = v.toString('utf8');
  if (typeof v === 'string') {
    try {
      v = JSON.parse(v);
    } catch {
      return undefined;
    }
  }
  return isPlainObject(v) ? (v as Record<string, unknown>) : undefined;
}

/** Why the row's columns cannot be an event (id, routing words, aggregate id, payload, headers), else undefined. */
export function invalidReason(
  row: Record<string, unknown>,
  id: string | undefined,
  headers: Record<string, unknown> | undefined,
): string | undefined {
  if (!id || !UUID.test(id)) return 'id is not a uuid';
  if (typeof row.aggregatetype !== 'string' || !WORD.test(row.aggregatetype))
    return 'aggregatetype is missing or not a routing word';
  if (typeof row.type !== 'string' || !WORD.test(row.type)) return 'type is missing or not a routing word';
  if (typeof row.aggregateid !== 'string' || row.aggregateid.length === 0) return 'aggregateid is missing';
  const p = row.payload;
  // jsonb text from PostgreSQL is normalized: an object starts with '{'.
  if (Buffer.isBuffer(p) ? p[0] !== 0x7b : typeof p === 'string' ? !p.startsWith('{') : !isPlainObject(p))
    return 'payload is not a JSON object';
  if (row.headers !== null && row.headers !== undefined && !headers) return 'headers is not a JSON object';
  return undefined;
}

/** The aggregate types of the catalogue: each is the service whose outbox holds its events. */
const CATALOGUE_AGGREGATES: ReadonlySet<string> = new Set(Object.values(EventCatalog).map((e) => e.aggregateType));

/**
 * A row that claims what another service publishes: an aggregate type of the catalogue other than its source's
 * (source names are service names), or a catalogue event under another aggregate type. Either would let one
 * service's database, through the relay's trusted signature, speak for another. Types the catalogue does not know
 * (tests, benchmarks, events newer than this code) pass as before: no consumer binds them.
 */
export function provenanceProblem(row: Record<string, unknown>, source: string): string | undefined {
  const aggregateType = row.aggregatetype as string;
  const type = row.type as string;
  if (aggregateType !== source && CATALOGUE_AGGREGATES.has(aggregateType))
    return `aggregatetype ${aggregateType} does not belong to source ${source}`;
  if (isEventType(type) && EventCatalog[type].aggregateType !== aggregateType)
    return `${type} is an event of aggregatetype ${EventCatalog[type].aggregateType}, not ${aggregateType}`;
  return undefined;
}

function isPlainObject(v: unknown): boolean {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
