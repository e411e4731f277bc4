import type { z } from 'zod';

/** What a component says about itself when asked `--help`. */
export type ComponentUsage = {
  /** The command that runs it, e.g. `saga order` or `npm run order`. */
  name: string;
  /** One line: what it does. */
  summary: string;
  /** Extra lines after the summary (arguments of a tool, examples). */
  details?: string[];
  /** The environment it reads: listed with defaults in the help. */
  env?: z.ZodObject;
  /** Arguments it takes itself: true, or why not. Anything else is refused. Long-running components take none. */
  accepts?: (args: string[]) => boolean | string;
};

export type ArgsDecision = { action: 'run' } | { action: 'help' } | { action: 'refuse'; message: string };

/** Pure: what to do with `args`. `--help`/`-h` anywhere wins; an argument the component does not take is refused. */
export function decideArgs(args: readonly string[], accepts?: (args: string[]) => boolean | string): ArgsDecision {
  if (args.includes('--help') || args.includes('-h') || args[0] === 'help') return { action: 'help' };
  if (!accepts && args.length === 0) return { action: 'run' };
  const verdict = accepts?.([...args]) ?? false;
  if (verdict === true) return { action: 'run' };
  return {
    action: 'refuse',
    message: typeof verdict === 'string' ? verdict : `unknown argument${args.length > 1 ? 's' : ''}: ${args.join(' ')}`,
  };
}

/** The help text: usage, summary, details, and each environment variable with its default. */
export function formatUsage(u: ComponentUsage): string {
  const lines = [`usage: ${u.name}${u.accepts ? ' [arguments]' : ''}`, '', u.summary];
  if (u.details?.length) lines.push('', ...u.details);
  if (u.env) {
    lines.push('', 'environment (<NAME>_FILE=/path reads <NAME> from a file):');
    const shape = u.env.shape as Record<string, z.ZodType>;
    const width = Math.max(...Object.keys(shape).map((k) => k.length));
    for (const [key, type] of Object.entries(shape)) {
      const def = defaultOf(type);
      lines.push(
        `  ${key.padEnd(width)}  ${def === undefined ? '(optional or required, no default)' : `default ${def}`}`,
      );
    }
  }
  return lines.join('\n');
}

function defaultOf(type: z.ZodType): string | undefined {
  const def = (type as { def?: { type?: string; defaultValue?: unknown } }).def;
  if (def?.type !== 'default') return undefined;
  const value = typeof def.defaultValue === 'function' ? (def.defaultValue as () => unknown)() : def.defaultValue;
  return JSON.stringify(value);
}

/**
 * Answer `--help` (exit 0) and unknown arguments (exit 2) before the component starts anything: a person who
 * asks a long-running service for help must not start it. Call first thing in each entry point.
 */
export function answerArgs(u: ComponentUsage, args: readonly string[] = process.argv.slice(2)): void {
  const decision = decideArgs(args, u.accepts);
  if (decision.action === 'run') return;
  if (decision.action === 'help') {
    process.stdout.write(`${formatUsage(u)}\n`);
    process.exit(0);
  }
  // npm eats a bare --help meant for the script: it must come after `--`.
  const ask = u.name.startsWith('npm run ') ? `${u.name} -- --help` : `${u.name} --help`;
  process.stderr.write(`${u.name}: ${decision.message}\n${ask} for usage\n`);
  process.exit(2);
}

/**
 * The message for an argument `node:util` parseArgs refused, in the words the tools use ("unknown argument --x").
 * parseArgs names the option only in its message text, so that is where the name is read from; the kind of mistake
 * comes from the error's code.
 */
export function usageError(err: unknown): string {
  const code = (err as { code?: string }).code;
  const message = err instanceof Error ? err.message : String(err);
  const option = /'(-{1,2}[^'\s]+)/.exec(message)?.[1];
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && option) return `unknown argument ${option}`;
  if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') return message;
  if (code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') return 'unexpected argument';
  throw err;
}
