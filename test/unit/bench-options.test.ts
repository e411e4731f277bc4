import { parseOptions, UsageError, usage } from '../../bench/options';
import { referenceFileName, referenceOf, resultFileName, type Run } from '../../bench/result-file';

const refused = (argv: string[]) => {
  try {
    parseOptions(argv);
  } catch (err) {
    if (err instanceof UsageError) return err.message;
    throw err;
  }
  throw new Error(`accepted: ${argv.join(' ')}`);
};

describe('bench options', () => {
  it('defaults to every section, both saga topologies and the off-path weight of nice 10', () => {
    expect(parseOptions([])).toEqual({
      help: false,
      smoke: false,
      only: undefined,
      reference: false,
      out: undefined,
      baselineRef: undefined,
      baselineOutboxTrigger: false,
      sagaServers: ['shared', 'per-service'],
      node: undefined,
      baselineNode: undefined,
      offPathNice: 10,
      baselineOffPathNice: 10,
    });
  });

  it('reads every option the bench documents', () => {
    const o = parseOptions([
      '--only=saga,plans',
      '--reference',
      '--out=/tmp/x',
      '--baseline-ref=HEAD~1',
      '--baseline-outbox-trigger',
      '--saga-servers=shared',
      '--node=/opt/node24/bin/node',
      '--baseline-node',
      '/usr/bin/node',
      '--off-path-nice=0',
      '--backlog=200000',
      '--overload-rate=1200',
    ]);
    expect(o).toMatchObject({
      only: ['saga', 'plans'],
      reference: true,
      out: '/tmp/x',
      baselineRef: 'HEAD~1',
      baselineOutboxTrigger: true,
      sagaServers: ['shared'],
      node: '/opt/node24/bin/node',
      baselineNode: '/usr/bin/node',
      offPathNice: 0,
      baselineOffPathNice: 0,
      backlog: 200_000,
      overloadRate: 1200,
    });
    expect(parseOptions(['--off-path-nice=5', '--baseline-off-path-nice=10']).baselineOffPathNice).toBe(10);
    expect(parseOptions(['-h']).help).toBe(true);
  });

  it('refuses what it does not know, naming it', () => {
    expect(refused(['--smok'])).toBe('unknown option --smok');
    expect(refused(['--toString'])).toBe('unknown option --toString');
    expect(refused(['--only=saga,sagas'])).toMatch(/--only: 'sagas' is not one of throughput/);
    expect(refused(['--saga-servers=both'])).toMatch(/--saga-servers: 'both'/);
    expect(refused(['--off-path-nice=-1'])).toMatch(/--off-path-nice: expected an integer from 0 to 19/);
    expect(refused(['--baseline-off-path-nice=2.5'])).toMatch(/--baseline-off-path-nice/);
    expect(refused(['saga'])).toMatch(/saga/);
    expect(refused(['--smoke=yes'])).toMatch(/--smoke/);
    expect(refused(['--only'])).toMatch(/--only/);
    expect(refused(['--backlog=50k'])).toMatch(/--backlog: expected a whole number of rows/);
    expect(refused(['--backlog=10'])).toMatch(/at least 1000/);
    expect(refused(['--overload-rate=fast'])).toMatch(/--overload-rate: expected a whole number of orders per second/);
  });

  it('refuses a smoke run as a reference', () => {
    expect(refused(['--smoke', '--reference'])).toMatch(/--reference/);
  });

  it('lists every option in its help', () => {
    for (const name of ['--smoke', '--only', '--reference', '--out', '--baseline-ref', '--saga-servers', '--node'])
      expect(usage()).toContain(name);
    expect(usage()).toContain('--baseline-off-path-nice');
    expect(usage()).toContain('--backlog');
  });
});

describe('bench result files', () => {
  const run: Run = {
    startedAt: '2026-12-06T10:00:00.000Z',
    smoke: false,
    commit: 'abc',
    args: ['--only=throughput,saga', '--reference'],
    machine: { cpus: 2, memGiB: 24 },
    versions: { node: 'v20' },
    parameters: { backlog: 50_000 },
    results: { throughput: { classic: 1 }, saga: { closed: 2 } },
    table: [
      { section: '1. backlog', what: 'a', figure: '1', baseline: '2', ratio: '50%' },
      { section: '4. saga', what: 'b', figure: '3', baseline: '4', ratio: '-' },
    ],
  };

  it('names a run by its start and a reference by its section', () => {
    expect(resultFileName(new Date(run.startedAt), false)).toBe('bench-2026-12-06T10-00-00-000Z.json');
    expect(resultFileName(new Date(run.startedAt), true)).toBe('bench-2026-12-06T10-00-00-000Z-smoke.json');
    expect(referenceFileName('saga')).toBe('reference-saga.json');
  });

  it("keeps one section's results and rows with the run's metadata", () => {
    const ref = referenceOf(run, 'saga', [run.table[1]!]);
    expect(ref).toEqual({
      section: 'saga',
      startedAt: run.startedAt,
      smoke: false,
      commit: 'abc',
      args: run.args,
      machine: run.machine,
      versions: run.versions,
      parameters: run.parameters,
      results: { saga: { closed: 2 } },
      table: [run.table[1]],
    });
  });
});
