/**
 * Business rules stay pure: a domain folder (services/<name>/src/domain, packages/common/src/domain) reaches,
 * directly or through what it imports, nothing but other domain and contract modules and zod. No driver, broker
 * client, HTTP framework, logger or Node built-in, so the rules run in a unit test with no I/O.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '../..');
const COMMON = path.join(ROOT, 'packages/common/src');
const ALLOWED_PACKAGES = new Set(['zod']);

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    return statSync(full).isDirectory() ? filesUnder(full) : full.endsWith('.ts') ? [full] : [];
  });
}

/** Module specifiers a file imports or re-exports, type-only imports excluded (they vanish at build time). */
export function importsOf(source: string): string[] {
  const specs: string[] = [];
  for (const m of source.matchAll(/^\s*(import|export)\s+(type\s+)?[^'"]*?from\s+['"]([^'"]+)['"]/gm)) {
    if (!m[2]) specs.push(m[3]!);
  }
  for (const m of source.matchAll(/^\s*import\s+['"]([^'"]+)['"]/gm)) specs.push(m[1]!);
  for (const m of source.matchAll(/\b(?:require|import)\(\s*['"]([^'"]+)['"]\s*\)/g)) specs.push(m[1]!);
  return specs;
}

function resolveLocal(from: string, spec: string): string | undefined {
  const base = spec.startsWith('@saga/common/')
    ? path.join(COMMON, spec.slice('@saga/common/'.length))
    : spec.startsWith('.')
      ? path.resolve(path.dirname(from), spec)
      : undefined;
  if (!base) return undefined;
  return [`${base}.ts`, path.join(base, 'index.ts')].find((f) => existsSync(f));
}

/** Every module a file reaches that is not a repository file, with the chain that reaches it. */
function foreignReach(entry: string): { chain: string[]; spec: string }[] {
  const found: { chain: string[]; spec: string }[] = [];
  const seen = new Set<string>();
  const visit = (file: string, chain: string[]) => {
    if (seen.has(file)) return;
    seen.add(file);
    for (const spec of importsOf(readFileSync(file, 'utf8'))) {
      const local = resolveLocal(file, spec);
      if (local) visit(local, [...chain, path.relative(ROOT, local)]);
      else if (!ALLOWED_PACKAGES.has(spec)) found.push({ chain, spec });
    }
  };
  visit(entry, [path.relative(ROOT, entry)]);
  return found;
}

const domainFiles = [
  ...readdirSync(path.join(ROOT, 'services')).flatMap((s) => {
    const dir = path.join(ROOT, 'services', s, 'src/domain');
    return existsSync(dir) ? filesUnder(dir) : [];
  }),
  ...filesUnder(path.join(COMMON, 'domain')),
];

describe('domain code imports no I/O', () => {
  it('finds the domain folders', () => {
    expect(domainFiles.length).toBeGreaterThanOrEqual(5);
  });

  it.each(domainFiles.map((f) => path.relative(ROOT, f)))('%s reaches only domain, contracts and zod', (file) => {
    expect(foreignReach(path.join(ROOT, file))).toEqual([]);
  });

  it('sees an I/O import, direct or through a re-export, and ignores a type-only one', () => {
    const src = [
      "import type { Pool } from 'pg';",
      "import { z } from 'zod';",
      "export { connect } from 'amqplib';",
      "import { randomUUID } from 'node:crypto';",
      "const later = () => import('express');",
    ].join('\n');
    expect(importsOf(src)).toEqual(['zod', 'amqplib', 'node:crypto', 'express']);
  });
});
