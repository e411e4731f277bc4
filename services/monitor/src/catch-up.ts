/**
 * The time as far as the monitor knows: the present when it has caught up with its queue, else the time of the
 * newest event it has consumed. Stuck detection counts quiet time up to this point, so a monitor that restarts,
 * falls behind or loses the broker does not call every saga in flight stuck and blame a healthy service.
 */
export type CatchUp = {
  /** An event the monitor committed. */
  consumed: (occurredAt: Date) => void;
  /** Messages waiting in the monitor's queue, as last read from the broker (undefined: could not read it). */
  queueDepth: (ready: number | undefined) => void;
  asOf: () => Date;
  behind: () => boolean;
};

export function createCatchUp(now: () => Date = () => new Date()): CatchUp {
  let newest: Date | undefined;
  // Behind until the broker says otherwise: a monitor that just started may have a backlog.
  let behind = true;
  return {
    consumed(at) {
      if (!newest || at.getTime() > newest.getTime()) newest = at;
    },
    queueDepth(ready) {
      behind = ready === undefined || ready > 0;
    },
    asOf: () => (behind && newest ? newest : now()),
    behind: () => behind,
  };
}
