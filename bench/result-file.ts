/**
 * What a bench run writes. bench/results/bench-<time>.json holds a whole run and is not committed;
 * bench/results/reference-<section>.json holds one section of the run that is the current reference for it
 * (written with --reference, committed), with the run's metadata so that it stands alone.
 */
import type { Section } from './options';

export type Row = { section: string; what: string; figure: string; baseline: string; ratio: string };

export interface Run {
  startedAt: string;
  smoke: boolean;
  /** The commit whose code ran (taken at the start: HEAD may move while the bench runs). */
  commit: string;
  /** The options as given, so that a reference says how to run it again. */
  args: string[];
  machine: { cpus: number; cpuModel?: string; memGiB: number };
  versions: Record<string, string | undefined>;
  parameters: Record<string, unknown>;
  results: Partial<Record<Section, unknown>>;
  table: Row[];
}

export type Reference = { section: Section } & Run;

export const resultFileName = (started: Date, smoke: boolean) =>
  `bench-${started.toISOString().replace(/[:.]/g, '-')}${smoke ? '-smoke' : ''}.json`;

export const referenceFileName = (section: Section) => `reference-${section}.json`;

/** One section of a run: its results and table rows, with the run's metadata. */
export function referenceOf(run: Run, section: Section, rows: Row[]): Reference {
  const { results, ...meta } = run;
  return { section, ...meta, results: { [section]: results[section] }, table: rows };
}

export const toJson = (value: unknown) => `${JSON.stringify(value, null, 2)}\n`;
