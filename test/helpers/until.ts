// Waiting on an event the code under test does not expose as a promise: the
// condition is checked again after every short turn, with no deadline of its
// own; the test's timeout bounds the wait, so a condition that never comes
// true fails the test instead of passing after a fixed sleep.

/** Resolves once `condition` holds (checked at once, then about every millisecond); `what` names it for readers. */
export async function until(condition: () => boolean | Promise<boolean>, what?: string): Promise<void> {
  void what;
  while (!(await condition())) await new Promise((resolve) => setTimeout(resolve, 1));
}
