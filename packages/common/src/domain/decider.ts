/**
 * The one shape of business rules in every service: `decide(state, command) → events` says what happens,
 * `evolve(state, event) → state` says what it does to the state. Both are pure (no clock, ids, I/O); handlers load
 * the state, decide, fold the events with evolve, and save what evolve returned. Imports nothing.
 */
export type Decider<S, C, E> = {
  decide: (state: S, command: C) => E[];
  evolve: (state: S, event: E) => S;
};

/**
 * Given/when/then for deciders, without mocks: `specFor(d).given(state, ...pastEvents).when(command)` answers the
 * events decided and the state after them.
 */
export function specFor<S, C, E>(d: Decider<S, C, E>) {
  return {
    given: (initial: S, ...past: E[]) => ({
      when(command: C): { events: E[]; state: S } {
        const start = past.reduce(d.evolve, initial);
        const events = d.decide(start, command);
        return { events, state: events.reduce(d.evolve, start) };
      },
    }),
  };
}
