/** CPU time of processes and of the machine, read from /proc (Linux): what each benchmark's process costs. */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();
/** Milliseconds in one clock tick, the unit of /proc's CPU times. */
export const tickMs = 1000 / CLK_TCK;

/** utime+stime (+ reaped children's, for a postmaster whose backends exited) of one process, in clock ticks. */
export function procTicks(pid: number | string, withChildren = false): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // f[0] is field 3 (state)
    const own = Number(f[11]) + Number(f[12]);
    return withChildren ? own + Number(f[13]) + Number(f[14]) : own;
  } catch {
    return 0; // exited between readdir and read
  }
}

/** The pids of every process named `comm`. */
function pidsByComm(comm: string): string[] {
  const out: string[] = [];
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === comm) out.push(pid);
    } catch {
      continue; // exited between readdir and read
    }
  }
  return out;
}

/** The ticks of every process named `comm` (with their reaped children). */
export function ticksByComm(comm: string): number {
  return pidsByComm(comm).reduce((sum, pid) => sum + procTicks(pid, true), 0);
}

/**
 * The process named `comm` that has used the most CPU, e.g. RabbitMQ's server among beam.smp processes (its CLI
 * tools are beam.smp too, short-lived: one that exits between two readings would take its CPU out of a sum).
 */
export function busiestByComm(comm: string): number | undefined {
  let best: { pid: string; ticks: number } | undefined;
  for (const pid of pidsByComm(comm)) {
    const ticks = procTicks(pid);
    if (!best || ticks > best.ticks) best = { pid, ticks };
  }
  return best && Number(best.pid);
}

/** Every non-idle jiffy of the machine (user, nice, system, irq, softirq, steal; not idle or iowait). */
export function machineTicks(): number {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = cpu;
  return user + nice + system + irq + softirq + steal;
}
