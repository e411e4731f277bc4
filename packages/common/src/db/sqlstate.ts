/**
 * The PostgreSQL SQLSTATE codes this project branches on, by their names in PostgreSQL's errcodes table
 * (https://www.postgresql.org/docs/current/errcodes-appendix.html). Branch on these, never on message text.
 */
export const SQLSTATE = {
  /** Class 08: the connection failed or went away. */
  CONNECTION_EXCEPTION_CLASS: '08',
  /** Class 22: the input is not valid for its type. */
  DATA_EXCEPTION_CLASS: '22',
  CHARACTER_NOT_IN_REPERTOIRE: '22021',
  INVALID_TEXT_REPRESENTATION: '22P02',
  UNTRANSLATABLE_CHARACTER: '22P05',
  /** Class 23: a constraint refuses the row. */
  INTEGRITY_CONSTRAINT_VIOLATION_CLASS: '23',
  UNIQUE_VIOLATION: '23505',
  CHECK_VIOLATION: '23514',
  /** A write on a read-only server or transaction (a standby after a failover, default_transaction_read_only). */
  READ_ONLY_SQL_TRANSACTION: '25006',
  INVALID_AUTHORIZATION_SPECIFICATION: '28000',
  /** The password was refused (rotated). */
  INVALID_PASSWORD: '28P01',
  INVALID_CATALOG_NAME: '3D000',
  SERIALIZATION_FAILURE: '40001',
  DEADLOCK_DETECTED: '40P01',
  INSUFFICIENT_PRIVILEGE: '42501',
  UNDEFINED_COLUMN: '42703',
  UNDEFINED_OBJECT: '42704',
  DUPLICATE_OBJECT: '42710',
  /** A table is missing (migrations not applied yet). */
  UNDEFINED_TABLE: '42P01',
  /** Class 53: the server is short of a resource. */
  INSUFFICIENT_RESOURCES_CLASS: '53',
  DISK_FULL: '53100',
  OUT_OF_MEMORY: '53200',
  TOO_MANY_CONNECTIONS: '53300',
  /** A replication slot is active for another process (another relay replica). */
  OBJECT_IN_USE: '55006',
  /** lock_timeout. */
  LOCK_NOT_AVAILABLE: '55P03',
  /** statement_timeout, or a cancel request. */
  QUERY_CANCELED: '57014',
  ADMIN_SHUTDOWN: '57P01',
  CRASH_SHUTDOWN: '57P02',
  CANNOT_CONNECT_NOW: '57P03',
} as const;

export type SqlState = (typeof SQLSTATE)[keyof typeof SQLSTATE];
