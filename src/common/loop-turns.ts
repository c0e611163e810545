// Page-cache reads and writes done on the event loop's thread settle without
// leaving the microtask queue: a caller that awaits them back to back (an
// appender, a records() consumer catching up, a loop of point reads) would
// never let the event loop turn, so timers, sockets and every other task
// would wait for the whole run. Such steps ask loopTurnDue() first and await
// the turn it returns. One clock per thread: it is the thread's loop that is held.

/** How long the loop may go without a turn. */
const LOOP_TURN_MS = 5;

/** When the first step since the loop last turned ran (performance.now()); undefined once it turned. */
let busySince: number | undefined;

/** The loop's next turn when it has not turned for LOOP_TURN_MS of steps, else undefined: go on at once. */
export function loopTurnDue(now: number = performance.now()): Promise<void> | undefined {
  if (busySince === undefined) {
    busySince = now;
    setImmediate(() => (busySince = undefined));
    return undefined;
  }
  return now - busySince > LOOP_TURN_MS ? new Promise<void>((resolve) => setImmediate(resolve)) : undefined;
}
