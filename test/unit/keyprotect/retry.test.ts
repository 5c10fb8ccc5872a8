import { describe, expect, it } from 'vitest';
import type { Random } from '../../../src/core/index.js';
import { AppError } from '../../../src/core/index.js';
import {
  backoffDelayMs,
  DEFAULT_RETRY_POLICY,
  resolveRetryPolicy,
  retryDelayFor,
  runWithRetry,
} from '../../../src/keyprotect/retry.js';

/** Random whose 4-byte draws are all `fill` (0x00 → lowest jitter, 0xff → highest). */
const constantRandom = (fill: number): Random => ({ bytes: (n) => Buffer.alloc(n, fill), uuid: () => 'u' });
const policy = resolveRetryPolicy({ maxAttempts: 4, baseDelayMs: 100, maxDelayMs: 1000, maxRetryAfterMs: 5000 });
const unavailable = () => new AppError('UPSTREAM_UNAVAILABLE', 'down', { retryable: true });
const limited = (retryAfterMs?: number) =>
  new AppError('UPSTREAM_RATE_LIMITED', 'slow down', {
    retryable: true,
    details: retryAfterMs === undefined ? {} : { retryAfterMs },
  });

describe('resolveRetryPolicy', () => {
  it('defaults', () => {
    expect(resolveRetryPolicy()).toEqual(DEFAULT_RETRY_POLICY);
  });
  it.each([{ maxAttempts: 0 }, { baseDelayMs: -1 }, { maxRetryAfterMs: 1.5 }])('rejects %j', (bad) => {
    expect(() => resolveRetryPolicy(bad)).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
  });
});

describe('backoffDelayMs (equal jitter)', () => {
  it.each([
    [1, 0x00, 50],
    [2, 0x00, 100],
    [3, 0x00, 200],
    [5, 0x00, 500], // capped at maxDelayMs 1000 → [500, 1000)
    [1, 0xff, 100],
    [5, 0xff, 1000],
  ])('retry %i with jitter byte %i → %i ms', (n, fill, ms) => {
    expect(backoffDelayMs(policy, n, constantRandom(fill))).toBe(ms);
  });
});

describe('retryDelayFor', () => {
  const r = constantRandom(0);
  it('never retries a non-idempotent call', () => {
    expect(retryDelayFor(policy, unavailable(), 1, false, r)).toBeUndefined();
  });
  it('never retries a non-retryable error', () => {
    expect(retryDelayFor(policy, new AppError('ROTATION_TOO_SOON', 'x'), 1, true, r)).toBeUndefined();
  });
  it('stops after maxAttempts', () => {
    expect(retryDelayFor(policy, unavailable(), 3, true, r)).toBe(200);
    expect(retryDelayFor(policy, unavailable(), 4, true, r)).toBeUndefined();
  });
  it('honours Retry-After exactly, even above the backoff cap', () => {
    expect(retryDelayFor(policy, limited(2500), 1, true, r)).toBe(2500);
  });
  it('gives up rather than shorten a Retry-After above maxRetryAfterMs', () => {
    expect(retryDelayFor(policy, limited(5001), 1, true, r)).toBeUndefined();
  });
  it('backs off on a 429 without Retry-After', () => {
    expect(retryDelayFor(policy, limited(), 2, true, r)).toBe(100);
  });
});

describe('runWithRetry', () => {
  const recorder = () => {
    const sleeps: number[] = [];
    return { sleeps, sleep: async (ms: number) => void sleeps.push(ms) };
  };

  it('retries an idempotent call until it succeeds, sleeping per the policy', async () => {
    const { sleeps, sleep } = recorder();
    let calls = 0;
    const result = await runWithRetry({
      policy,
      idempotent: true,
      random: constantRandom(0),
      sleep,
      attempt: async () => {
        calls++;
        if (calls === 1) throw limited(1000);
        if (calls === 2) throw unavailable();
        return 'ok';
      },
    });
    expect(result).toBe('ok');
    expect(calls).toBe(3);
    expect(sleeps).toEqual([1000, 100]);
  });

  it('sends a non-idempotent call exactly once', async () => {
    const { sleeps, sleep } = recorder();
    let calls = 0;
    await expect(
      runWithRetry({
        policy,
        idempotent: false,
        random: constantRandom(0),
        sleep,
        attempt: async () => {
          calls++;
          throw unavailable();
        },
      }),
    ).rejects.toMatchObject({ code: 'UPSTREAM_UNAVAILABLE' });
    expect(calls).toBe(1);
    expect(sleeps).toEqual([]);
  });

  it('gives up after maxAttempts with the last error', async () => {
    const { sleeps, sleep } = recorder();
    let calls = 0;
    await expect(
      runWithRetry({
        policy,
        idempotent: true,
        random: constantRandom(0),
        sleep,
        attempt: async () => {
          calls++;
          throw unavailable();
        },
      }),
    ).rejects.toMatchObject({ code: 'UPSTREAM_UNAVAILABLE' });
    expect(calls).toBe(4);
    expect(sleeps).toEqual([50, 100, 200]);
  });

  it('stops retrying once the signal aborts', async () => {
    const controller = new AbortController();
    let calls = 0;
    await expect(
      runWithRetry({
        policy,
        idempotent: true,
        random: constantRandom(0),
        sleep: async () => controller.abort(),
        signal: controller.signal,
        attempt: async () => {
          calls++;
          throw unavailable();
        },
      }),
    ).rejects.toMatchObject({ code: 'UPSTREAM_UNAVAILABLE' });
    expect(calls).toBe(1);
  });
});
