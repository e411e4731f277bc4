import { execFileSync } from 'node:child_process';

/**
 * Run `rabbitmqctl -q <args>` for setup (`input` goes to its stdin: passwords never on the command line). A failure
 * says what was being done, why (missing tool, or the tool's own message) and the way around it.
 */
export function rabbitmqctl(args: string[], doing: string, input?: string): string {
  try {
    return execFileSync('rabbitmqctl', ['-q', ...args], { input, stdio: 'pipe', encoding: 'utf8' });
  } catch (err) {
    const why =
      (err as NodeJS.ErrnoException).code === 'ENOENT'
        ? 'rabbitmqctl is not on PATH'
        : String((err as { stderr?: unknown }).stderr ?? err).trim();
    throw new Error(
      `${doing} (${why}): set RABBITMQ_MANAGEMENT_URL (management plugin) or run setup where rabbitmqctl works`,
      { cause: err },
    );
  }
}
