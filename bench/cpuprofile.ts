/**
 * Summaries of V8 CPU profiles (`node --cpu-prof`): self time grouped by package, the heaviest functions by self
 * time and by inclusive time (the function and what it calls). `npx tsx bench/cpuprofile.ts <file.cpuprofile>…`
 * prints them for any profile.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';

type Node = { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] };
type Profile = { nodes: Node[]; samples: number[]; timeDeltas: number[]; startTime: number };

/**
 * A span of the machine's monotonic clock in µs (`process.hrtime.bigint() / 1000n`), which V8 stamps its samples
 * with: a profile of a whole process life summarized over the load alone, without start-up and checks.
 */
export type ProfileWindow = { fromUs: number; toUs: number };

/** The monotonic clock as V8's profiler reads it (µs). */
export const monotonicUs = () => Number(process.hrtime.bigint() / 1000n);

/** The package a frame belongs to, or a V8 pseudo-frame, or our own code. */
function groupOf(url: string, fn: string): string {
  if (!url) return fn.startsWith('(') ? fn : `(native) ${fn || 'anonymous'}`;
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (m) return m[1]!;
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0]}`;
  return 'our code';
}

/** A function as the summaries name it: its name, file and line, and its package. */
function frameKey({ functionName, url, lineNumber }: Node['callFrame']): string {
  return `${functionName || '(anonymous)'} ${url ? `${path.basename(url)}:${lineNumber + 1}` : ''} [${groupOf(url, functionName)}]`;
}

export function summarizeProfile(file: string, window?: ProfileWindow) {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  let at = p.startTime;
  p.samples.forEach((id, i) => {
    at += p.timeDeltas[i] ?? 0;
    if (window && (at < window.fromUs || at > window.toUs)) return;
    self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0));
  });
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const idle = [...self]
    .filter(([id]) => byId.get(id)!.callFrame.functionName === '(idle)')
    .reduce((a, [, us]) => a + us, 0);
  const groups = new Map<string, number>();
  const fns = new Map<string, number>();
  for (const [id, us] of self) {
    const frame = byId.get(id)!.callFrame;
    const g = groupOf(frame.url, frame.functionName);
    groups.set(g, (groups.get(g) ?? 0) + us);
    const key = frameKey(frame);
    fns.set(key, (fns.get(key) ?? 0) + us);
  }
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  // Inclusive time: each sample counts once for every distinct function on its stack (recursion counted once).
  const inclusive = new Map<string, number>();
  for (const [id, us] of self) {
    if (byId.get(id)!.callFrame.functionName === '(idle)') continue;
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const frame = byId.get(cur)!.callFrame;
      if (!frame.url && frame.functionName === '(root)') continue;
      const key = frameKey(frame);
      if (seen.has(key)) continue;
      seen.add(key);
      inclusive.set(key, (inclusive.get(key) ?? 0) + us);
    }
  }
  const top = (m: Map<string, number>, n: number) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, us]) => `${((us / total) * 100).toFixed(1).padStart(5)}%  ${k}`);
  return {
    totalMs: total / 1000,
    busyMs: (total - idle) / 1000,
    groups: top(groups, 12),
    functions: top(fns, 15),
    inclusive: top(inclusive, 25),
  };
}

if (require.main === module) {
  for (const f of process.argv.slice(2)) {
    const s = summarizeProfile(f);
    console.log(
      `== ${f}: ${s.totalMs.toFixed(0)} ms sampled, ${s.busyMs.toFixed(0)} ms busy\n-- by package\n${s.groups.join('\n')}\n-- heaviest functions\n${s.functions.join('\n')}\n-- heaviest with what they call\n${s.inclusive.join('\n')}\n`,
    );
  }
}
