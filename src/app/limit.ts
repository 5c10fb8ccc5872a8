/**
 * The one bounded-concurrency helper of the use cases (the runner's parallel staging, the scheduler tick's lanes).
 */

/**
 * Runs `fn` over `items` with at most `limit` in flight; no new item starts after a failure. Waits for every
 * started task to settle before it rethrows the first failure, so nothing is still in flight when the caller sees
 * it. `minor(err)` marks failures a later one outranks (e.g. a worker's "stopped" that another task's crash caused).
 */
export async function bounded<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
  minor: (err: unknown) => boolean = () => false,
): Promise<void> {
  let next = 0;
  let firstError: { err: unknown } | undefined;
  const lanes = Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, async () => {
    while (next < items.length && !firstError) {
      const item = items[next++] as T;
      try {
        await fn(item);
      } catch (err) {
        const had = firstError as { err: unknown } | undefined;
        if (!had || (minor(had.err) && !minor(err))) firstError = { err };
      }
    }
  });
  await Promise.all(lanes);
  if (firstError) throw firstError.err;
}
