import type { AppError, Random } from '../core/index.js';
import { AppError as AppErrorClass } from '../core/index.js';

/**
 * The one retry policy of the Key Protect adapter ("idempotent-only, capped exponential backoff with equal jitter,
 * Retry-After honoured up to a cap"). The SDK's own retries are disabled because they re-send POSTs, rotate included.
 *
 * - Only idempotent calls are retried: get key, list versions, create/get import token, wrap, unwrap.
 *   Create key and rotate are sent once; an ambiguous failure is reported (`details.ambiguous`), never re-sent.
 * - Only retryable errors are retried: 429 (`UPSTREAM_RATE_LIMITED`) and 5xx/transport (`UPSTREAM_UNAVAILABLE`).
 * - Delay before retry n (1-based): `Retry-After` when the server sent one, else `d/2 + U[0,1)·d/2` with
 *   `d = min(maxDelayMs, baseDelayMs·2^(n-1))`.
 * - A `Retry-After` longer than `maxRetryAfterMs` is not shortened (that would just earn another 429): the call
 *   stops and the error carries `details.retryAfterMs`, so the caller can reschedule.
 * - An aborted `signal` stops retrying at once.
 */
export interface RetryPolicy {
  /** Attempts in total, the first included; 1 disables retries. */
  maxAttempts: number;
  baseDelayMs: number;
  /** Cap on the computed backoff (not on Retry-After). */
  maxDelayMs: number;
  /** Longest Retry-After the adapter waits for. */
  maxRetryAfterMs: number;
}

export const DEFAULT_RETRY_POLICY: Readonly<RetryPolicy> = Object.freeze({
  maxAttempts: 4,
  baseDelayMs: 200,
  maxDelayMs: 3_000,
  maxRetryAfterMs: 10_000,
});

/** Merges `overrides` into the default policy. @throws {AppError} CONFIG_INVALID for a non-positive or fractional value */
export function resolveRetryPolicy(overrides: Partial<RetryPolicy> = {}): RetryPolicy {
  const policy = { ...DEFAULT_RETRY_POLICY, ...overrides };
  for (const [name, value] of Object.entries(policy)) {
    const min = name === 'maxAttempts' ? 1 : 0;
    if (!Number.isInteger(value) || value < min) {
      throw new AppErrorClass('CONFIG_INVALID', `retry.${name} must be an integer ≥ ${min}, got ${String(value)}`, {
        details: { field: `retry.${name}` },
      });
    }
  }
  return policy;
}

/** Backoff before retry `retryNumber` (1-based), with equal jitter from `random`. */
export function backoffDelayMs(policy: RetryPolicy, retryNumber: number, random: Random): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (retryNumber - 1));
  const unit = random.bytes(4).readUInt32BE(0) / 2 ** 32;
  return Math.round(ceiling / 2 + (unit * ceiling) / 2);
}

/**
 * How long to wait before re-sending after `err` on attempt `attempt` (1-based), or `undefined` to give up.
 */
export function retryDelayFor(
  policy: RetryPolicy,
  err: AppError,
  attempt: number,
  idempotent: boolean,
  random: Random,
): number | undefined {
  if (!idempotent || !err.retryable || attempt >= policy.maxAttempts) return undefined;
  const retryAfterMs = err.details.retryAfterMs;
  if (typeof retryAfterMs === 'number') {
    return retryAfterMs <= policy.maxRetryAfterMs ? retryAfterMs : undefined;
  }
  return backoffDelayMs(policy, attempt, random);
}

/** Sleeps `ms`; resolves early (without throwing) when `signal` aborts. */
export type Sleep = (ms: number, signal?: AbortSignal) => Promise<void>;

export const timerSleep: Sleep = (ms, signal) =>
  new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const onAbort = () => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });

export interface RetryRun<T> {
  policy: RetryPolicy;
  idempotent: boolean;
  random: Random;
  sleep: Sleep;
  signal?: AbortSignal;
  /** One attempt; must throw an AppError (already mapped) on failure. */
  attempt: (attempt: number) => Promise<T>;
  onRetry?: (info: { attempt: number; delayMs: number; error: AppError }) => void;
}

/** Runs `attempt` under the policy. Rethrows the last error when it gives up. */
export async function runWithRetry<T>(run: RetryRun<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await run.attempt(attempt);
    } catch (err) {
      const appErr = err as AppError;
      const delayMs = run.signal?.aborted
        ? undefined
        : retryDelayFor(run.policy, appErr, attempt, run.idempotent, run.random);
      if (delayMs === undefined) throw err;
      run.onRetry?.({ attempt, delayMs, error: appErr });
      await run.sleep(delayMs, run.signal);
      if (run.signal?.aborted) throw err;
    }
  }
}
