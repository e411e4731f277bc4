/**
 * A statement that carries its transaction's BEGIN in front of it, its COMMIT behind it, or both, in one write and
 * one round trip.
 *
 * node-postgres sends each query when the one before it has been answered, so a transaction of BEGIN, two
 * statements and COMMIT costs four round trips, and on each a write by the client, a wake-up, a read and a write by
 * the server, and a read by the client. Here the extended-protocol messages of BEGIN (Parse, Bind, Execute), of the
 * statement (Parse unless this connection has it, Bind, Describe, Execute) and of COMMIT go out together, followed
 * by one Sync. The server runs them in order and answers at the Sync. BEGIN opens a transaction block, so the Sync
 * does not end it; COMMIT ends it.
 *
 * After an error the server skips every message up to the Sync: a failed statement never reaches its COMMIT, and the
 * transaction block is left aborted for the caller's ROLLBACK, as when each is sent on its own.
 */
import type pg from 'pg';
import { pgParsedStatements, pgQueryClass, type PgConnection, type PgQuery } from '../runtime/library-internals';

export type TransactionEdges = { begin: boolean; commit: boolean };

let EdgeQuery: (new (config: pg.QueryConfig, edges: TransactionEdges) => PgQuery) | undefined;

function edgeQueryClass() {
  if (EdgeQuery) return EdgeQuery;
  const Query = pgQueryClass();
  EdgeQuery = class extends Query {
    private completes = 0;
    private preparing = false;
    constructor(
      config: pg.QueryConfig,
      private readonly edges: TransactionEdges,
    ) {
      super(config);
    }
    override requiresPreparation(): boolean {
      return true;
    }
    override prepare(connection: PgConnection): void {
      if (this.edges.begin) sendUnnamed(connection, 'BEGIN');
      this.preparing = true;
      try {
        super.prepare(connection);
      } finally {
        this.preparing = false;
      }
    }
    override _getRows(connection: PgConnection, rows: number | undefined): void {
      connection.execute({ portal: this.portal, rows });
      if (this.edges.commit) sendUnnamed(connection, 'COMMIT');
      connection.sync();
    }
    override handleCommandComplete(msg: unknown, connection: PgConnection): void {
      const n = ++this.completes;
      // BEGIN's completion comes first and COMMIT's last; the statement's own is the one in between.
      if (this.edges.begin && n === 1) return;
      if (this.edges.commit && n === (this.edges.begin ? 3 : 2)) return;
      super.handleCommandComplete(msg, connection);
    }
    override handleError(err: unknown, connection: PgConnection): void {
      // An error while the messages are written is a value that could not be bound: node-postgres then closes the
      // named statement on the server, so this connection must parse it again.
      if (this.preparing && this.name) delete connection.parsedStatements[this.name];
      super.handleError(err, connection);
    }
  };
  return EdgeQuery;
}

/** Parse, Bind and Execute of a statement without parameters in the unnamed statement and portal. */
function sendUnnamed(connection: PgConnection, text: string) {
  connection.parse({ text, name: '', types: [] });
  connection.bind({ portal: '', statement: '', values: [] });
  connection.execute({ portal: '', rows: undefined });
}

/**
 * Run `config` on `client` with BEGIN before it and/or COMMIT after it, in one round trip once this connection has
 * parsed the statement. The first run of a named statement on a connection sends BEGIN, the statement and COMMIT
 * each on its own: node-postgres records a named statement as parsed on the first ParseComplete of an exchange,
 * which here would be BEGIN's, so a statement whose own Parse then failed would be taken for parsed and never
 * parsed again.
 */
export async function queryWithEdges<R extends pg.QueryResultRow = pg.QueryResultRow>(
  client: pg.ClientBase,
  config: pg.QueryConfig,
  edges: TransactionEdges,
): Promise<pg.QueryResult<R>> {
  if (config.name !== undefined && pgParsedStatements(client)?.[config.name] !== config.text) {
    if (edges.begin) await client.query('BEGIN');
    const result = await client.query<R>(config);
    if (edges.commit) await client.query('COMMIT');
    return result;
  }
  return new Promise((resolve, reject) => {
    const Query = edgeQueryClass();
    const query = new Query(
      {
        ...config,
        callback: (err: Error | null, res: pg.QueryResult<R>) => (err ? reject(err) : resolve(res)),
      } as pg.QueryConfig,
      edges,
    );
    // node-postgres reads a statement's own read timeout off the object it submits.
    const timeout = (config as { query_timeout?: number }).query_timeout;
    if (timeout !== undefined) (query as unknown as { query_timeout: number }).query_timeout = timeout;
    client.query(query as unknown as pg.QueryConfig);
  });
}
