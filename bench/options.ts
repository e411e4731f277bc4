/** The options of `npm run bench`, parsed strictly: a mistyped option stops the run before it builds anything. */
import { parseArgs } from 'node:util';

/** In the order they run. */
export const SECTIONS = ['throughput', 'writers', 'latency', 'saga', 'plans', 'memory', 'peer', 'tail'] as const;
export type Section = (typeof SECTIONS)[number];
export type Topology = 'shared' | 'per-service';

export interface BenchOptions {
  help: boolean;
  smoke: boolean;
  /** Sections to run; all when absent. */
  only?: Section[];
  /** Also write reference-<section>.json per section that ran, replacing the previous ones. */
  reference: boolean;
  /** Directory for the result files; bench/results when absent. */
  out?: string;
  baselineRef?: string;
  baselineOutboxTrigger: boolean;
  sagaServers: Topology[];
  node?: string;
  baselineNode?: string;
  offPathNice: number;
  baselineOffPathNice: number;
  /** Rows of the throughput section's backlog; 50,000 when absent. */
  backlog?: number;
  /** The saga's overload loop at this many orders/s for every build; twice each build's best closed loop when absent. */
  overloadRate?: number;
}

/** A mistake on the command line, told to the user as it is. */
export class UsageError extends Error {}

const OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  smoke: { type: 'boolean' },
  only: { type: 'string' },
  reference: { type: 'boolean' },
  out: { type: 'string' },
  'baseline-ref': { type: 'string' },
  'baseline-outbox-trigger': { type: 'boolean' },
  'saga-servers': { type: 'string' },
  node: { type: 'string' },
  'baseline-node': { type: 'string' },
  'off-path-nice': { type: 'string' },
  'baseline-off-path-nice': { type: 'string' },
  backlog: { type: 'string' },
  'overload-rate': { type: 'string' },
} as const;

const HELP: [string, string][] = [
  ['-h, --help', 'print these options and exit'],
  ['--smoke', 'a few hundred messages per section: checks that the bench runs, measures nothing'],
  ['--only=S1,S2', `sections to run (default all): ${SECTIONS.join(',')}`],
  ['--reference', 'also write reference-<section>.json per section run, replacing it (not with --smoke)'],
  ['--out=DIR', 'write the result files into DIR instead of bench/results'],
  ['--baseline-ref=REF', 'saga: also measure the bundle of git commit REF, first, in the same run'],
  ['--baseline-outbox-trigger', 'saga: the baseline gets the old outbox purge trigger (refs before retention)'],
  ['--saga-servers=T1,T2', 'saga: shared (one PostgreSQL), per-service (one each), or both (default)'],
  ['--node=PATH', "run the components on this node binary instead of the bench's own"],
  ['--baseline-node=PATH', "saga: the baseline's node binary (this commit's bundle without --baseline-ref)"],
  ['--backlog=N', 'throughput: rows of the backlog (default 50,000; a longer one weighs the start less)'],
  ['--off-path-nice=N', 'saga: relay, inventory, payment at the CPU weight of nice N (0-19; default 10)'],
  ['--baseline-off-path-nice=N', "saga: the baseline's weight (default: --off-path-nice)"],
  [
    '--overload-rate=N',
    "saga: the overload loop at N orders/s for every build, so a pair compares one load (default: twice each build's best closed loop)",
  ],
];
const ENV: [string, string][] = [
  ['BENCH_SAGA_CONC=64', 'saga: only these closed loops (comma-separated), for quicker pairs'],
  ['BENCH_RELAY_NODE_FLAGS=...', 'node flags for the relay, e.g. "--cpu-prof --cpu-prof-dir=DIR"'],
];

export function usage(): string {
  const width = Math.max(...[...HELP, ...ENV].map(([o]) => o.length));
  const lines = (rows: [string, string][]) => rows.map(([o, d]) => `  ${o.padEnd(width)}  ${d}`);
  return [
    'usage: npm run bench [-- options]',
    'Each figure next to its baseline, measured in the same run; the whole run in bench/results/bench-<time>.json.',
    '',
    ...lines(HELP),
    '',
    'environment:',
    ...lines(ENV),
    '',
  ].join('\n');
}

const list = (name: string, raw: string, allowed: readonly string[]): string[] => {
  const items = raw.split(',').map((s) => s.trim());
  const bad = items.find((s) => !allowed.includes(s));
  if (bad !== undefined) throw new UsageError(`--${name}: '${bad}' is not one of ${allowed.join(', ')}`);
  return items;
};

/** Only lower priority: a process may raise its children's nice value, not lower it below 0 without privileges. */
const nice = (name: string, raw: string | undefined, fallback: number): number => {
  if (raw === undefined) return fallback;
  const v = Number(raw);
  if (raw.trim() === '' || !Number.isInteger(v) || v < 0 || v > 19)
    throw new UsageError(`--${name}: expected an integer from 0 to 19, got '${raw}'`);
  return v;
};

const rows = (name: string, raw: string): number => {
  const v = Number(raw);
  if (raw.trim() === '' || !Number.isInteger(v) || v < 1000)
    throw new UsageError(`--${name}: expected a whole number of rows, at least 1000, got '${raw}'`);
  return v;
};

const perSecond = (name: string, raw: string): number => {
  const v = Number(raw);
  if (raw.trim() === '' || !Number.isInteger(v) || v < 1)
    throw new UsageError(`--${name}: expected a whole number of orders per second, got '${raw}'`);
  return v;
};

/** The argument that is not an option of ours, named by us rather than by parseArgs' generic hint. */
const unknownOption = (argv: string[]) =>
  argv
    .slice(0, argv.includes('--') ? argv.indexOf('--') : argv.length)
    .find((a) => a.startsWith('-') && a !== '-h' && !Object.hasOwn(OPTIONS, a.replace(/^--?/, '').split('=')[0]!));

export function parseOptions(argv: string[]): BenchOptions {
  let values;
  try {
    ({ values } = parseArgs({ args: argv, options: OPTIONS, strict: true, allowPositionals: false }));
  } catch (err) {
    const code = (err as { code?: string }).code;
    const unknown = unknownOption(argv);
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && unknown) throw new UsageError(`unknown option ${unknown}`);
    if (code?.startsWith('ERR_PARSE_ARGS_')) throw new UsageError((err as Error).message);
    throw err;
  }
  const smoke = values.smoke ?? false;
  const reference = values.reference ?? false;
  if (reference && smoke) throw new UsageError("--reference: a smoke run's figures are no reference");
  const offPathNice = nice('off-path-nice', values['off-path-nice'], 10);
  return {
    help: values.help ?? false,
    smoke,
    only: values.only === undefined ? undefined : (list('only', values.only, SECTIONS) as Section[]),
    reference,
    out: values.out,
    baselineRef: values['baseline-ref'],
    baselineOutboxTrigger: values['baseline-outbox-trigger'] ?? false,
    sagaServers: list('saga-servers', values['saga-servers'] ?? 'shared,per-service', [
      'shared',
      'per-service',
    ]) as Topology[],
    node: values.node,
    baselineNode: values['baseline-node'],
    offPathNice,
    baselineOffPathNice: nice('baseline-off-path-nice', values['baseline-off-path-nice'], offPathNice),
    ...(values.backlog === undefined ? {} : { backlog: rows('backlog', values.backlog) }),
    ...(values['overload-rate'] === undefined
      ? {}
      : { overloadRate: perSecond('overload-rate', values['overload-rate']) }),
  };
}
