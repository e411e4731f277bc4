/**
 * The PostgreSQL servers a deployment file starts, read from the file itself: for each database owner, the `-c`
 * settings its server's command line carries (docker-compose.yml's `command`, a k8s StatefulSet's `args`). A test
 * that starts scratch servers with exactly these sees what the deployment will see, without copying values.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { DATABASE_OWNERS, type DatabaseOwner } from '@saga/common/contracts/service-names';
import { ROOT } from './process';

/** `name=value` pairs, in command-line order. */
export type ServerSettings = Record<DatabaseOwner, string[]>;

/** The `-c name=value` pairs of a PostgreSQL command line; anything else on it is an error (the test would miss it). */
export function commandLineSettings(where: string, args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (i === 0 && a === 'postgres') continue;
    if (a === '-c' && args[i + 1]?.includes('=')) {
      out.push(args[++i]!);
      continue;
    }
    throw new Error(`${where}: cannot read "${a}" in the PostgreSQL command line ${JSON.stringify(args)}`);
  }
  return out;
}

function byOwner(where: string, found: Map<string, string[]>): ServerSettings {
  const missing = DATABASE_OWNERS.filter((s) => !found.has(`postgres-${s}`));
  if (missing.length) throw new Error(`${where}: no PostgreSQL server for ${missing.join(', ')}`);
  return Object.fromEntries(DATABASE_OWNERS.map((s) => [s, found.get(`postgres-${s}`)!])) as ServerSettings;
}

export function composePostgresSettings(file = path.join(ROOT, 'docker-compose.yml')): ServerSettings {
  const doc = YAML.parse(readFileSync(file, 'utf8'), { merge: true }) as {
    services: Record<string, { image?: string; command?: string[] }>;
  };
  const found = new Map<string, string[]>();
  for (const [name, svc] of Object.entries(doc.services)) {
    if (!svc.image?.startsWith('postgres:')) continue;
    found.set(name, commandLineSettings(`${file} ${name}`, svc.command ?? []));
  }
  return byOwner(file, found);
}

type K8sDoc = {
  kind?: string;
  metadata?: { name?: string };
  spec?: { template?: { spec?: { containers?: { image?: string; args?: string[]; command?: string[] }[] } } };
};

/** Every StatefulSet of `dir` (k8s/base) whose container runs the postgres image. */
export function k8sPostgresSettings(dir = path.join(ROOT, 'k8s/base')): ServerSettings {
  const found = new Map<string, string[]>();
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.yaml'))) {
    for (const d of YAML.parseAllDocuments(readFileSync(path.join(dir, f), 'utf8'))) {
      const o = d.toJSON() as K8sDoc | null;
      if (o?.kind !== 'StatefulSet') continue;
      const c = o.spec?.template?.spec?.containers?.find((x) => x.image?.startsWith('postgres:'));
      if (!c) continue;
      found.set(
        o.metadata!.name!,
        commandLineSettings(`${f} ${o.metadata!.name}`, [...(c.command ?? []), ...(c.args ?? [])]),
      );
    }
  }
  return byOwner(dir, found);
}

/** As pg_ctl's `-o` takes them (a shell string: each value quoted). */
export const asServerOptions = (settings: string[]): string[] =>
  settings.map((kv) => {
    const i = kv.indexOf('=');
    const value = kv.slice(i + 1);
    if (value.includes("'")) throw new Error(`cannot pass ${kv} through pg_ctl -o`);
    return `-c ${kv.slice(0, i)}='${value}'`;
  });
