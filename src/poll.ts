// Waiting, in one place: a sleep and a poll loop with a budget (and an optional AbortSignal that ends
// the wait early). Every "until this is true or N seconds pass" of ha-setup goes through pollUntil.

export const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });

export interface PollResult<T> {
  /** The check said done before the budget ran out. */
  done: boolean;
  /** What the last check returned (done or not): what a timeout message reports. */
  last: T | undefined;
}

/**
 * Calls `check` every `intervalMs` until it reports `done`, the budget is spent or `signal` aborts.
 * `check` returns `{ done, value }`; the last value is returned either way.
 */
export async function pollUntil<T>(
  check: () => Promise<{ done: boolean; value: T }>,
  o: { budgetMs: number; intervalMs: number; signal?: AbortSignal },
): Promise<PollResult<T>> {
  const deadline = Date.now() + o.budgetMs;
  let last: T | undefined;
  for (;;) {
    const r = await check();
    last = r.value;
    if (r.done) return { done: true, last };
    if (Date.now() + o.intervalMs > deadline || o.signal?.aborted) return { done: false, last };
    await sleep(o.intervalMs, o.signal);
  }
}
