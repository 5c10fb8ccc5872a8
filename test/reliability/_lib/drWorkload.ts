/**
 * An application workload for the DR-unreadable window scenario. It does what an application of a Key Protect
 * "multiple key deployments" setup does, over the real Key Protect client and HTTP:
 * - wraps a fresh DEK (32 random bytes) at the **primary** (the region it normally writes to), then
 * - immediately unwraps that ciphertext at **every duplicate**, as a DR failover would.
 *
 * A failure is a wrap that fails at the primary, an unwrap that fails at a duplicate, or an unwrap that returns
 * other bytes than the DEK. Each failure keeps its time (`performance.now()`), the member and the reason code —
 * never the DEK or the ciphertext. The workload runs `concurrency` loops until `stop()`.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { KeyProtectPort, KeyRef } from '../../../src/app/index.js';
import { cryptoRandom } from '../../../src/app/index.js';
import type { Group, Member } from '../../../src/core/index.js';
import { isAppError } from '../../../src/core/index.js';
import { authenticatorFromConfig, createKeyProtectClient } from '../../../src/keyprotect/index.js';
import type { LocalStack } from '../../support/localStack.js';

/** One failed application call. */
export interface DrFailure {
  /** `performance.now()` when the call settled. */
  atMs: number;
  op: 'wrap' | 'unwrap';
  role: Member['role'];
  region: string;
  crn: string;
  /** Key Protect version the DEK was wrapped under (unwrap failures). */
  wrappedVersionId?: string;
  /** `AppError` code (and Key Protect reason code), or `PLAINTEXT_MISMATCH`. */
  reason: string;
}

export interface DrWorkloadStats {
  /** Successful wraps at the primary. */
  wraps: number;
  /** Unwraps attempted at duplicates (successful or not). */
  unwraps: number;
  wrapFailures: number;
  /** Unwraps that threw. */
  unwrapFailures: number;
  /** Unwraps that answered with the wrong plaintext. */
  mismatches: number;
  /**
   * Successful unwraps answered from a duplicate's older version (Key Protect then also rewraps): the DEK was wrapped
   * at the primary under material the duplicate had already superseded — i.e. while duplicates were staged ahead.
   */
  olderVersionUnwraps: number;
  /** wrapFailures + unwrapFailures + mismatches. */
  failures: number;
  /** Every failure, in the order seen. */
  failureLog: DrFailure[];
  /** Distinct primary key versions the workload wrapped under (shows it ran across each promotion). */
  wrappedVersions: string[];
  /** Wall time the workload ran, ms. */
  durationMs: number;
}

export interface DrWorkload {
  /** Counters so far. */
  stats(): DrWorkloadStats;
  /** Resolves once an iteration (wrap + every unwrap) that *started after this call* has finished. */
  settle(): Promise<void>;
  /** Stops the loops, waits for iterations in flight, returns the final counters. */
  stop(): Promise<DrWorkloadStats>;
}

export interface DrWorkloadOptions {
  /** The application's Key Protect client (see {@link applicationKpClient}). */
  kp: KeyProtectPort;
  /** The group whose primary wraps and whose duplicates unwrap. */
  group: Group;
  /** Parallel wrap→unwrap loops. Default 2. */
  concurrency?: number;
  /** AAD the application binds its DEKs to. */
  aad?: string[];
}

/**
 * A Key Protect client as an application would hold one: its own IAM identity (the stack's `outsider` service id,
 * which has no lockstep role), its own retry budget, the real SDK over HTTP to every region of the stack.
 */
export function applicationKpClient(s: LocalStack): KeyProtectPort {
  return createKeyProtectClient({
    endpoints: Object.fromEntries(s.regions.map((r) => [r, s.stack.kp.regions[r]!.url])),
    authenticator: authenticatorFromConfig({
      kind: 'iam',
      apiKey: s.stack.iam.apiKeyFor('outsider'),
      iamUrl: s.stack.iam.url,
    }),
    random: cryptoRandom,
    clock: s.clock,
    retry: { maxAttempts: 3, baseDelayMs: 20, maxDelayMs: 100, maxRetryAfterMs: 200 },
    timeoutMs: 30_000,
  });
}

function reasonOf(err: unknown): string {
  if (isAppError(err)) {
    const kpCode = err.details.kpCode;
    return typeof kpCode === 'string' ? `${err.code} (${kpCode})` : err.code;
  }
  return err instanceof Error ? err.name : 'UNKNOWN';
}

function refOf(m: Member): KeyRef {
  return { region: m.region, instanceId: m.instanceId, keyId: m.keyId };
}

/** Starts the workload at once. Call `stop()` (e.g. in a `finally`) to end it. */
export function startDrWorkload(opts: DrWorkloadOptions): DrWorkload {
  const { kp } = opts;
  const primary = opts.group.members.find((m) => m.role === 'primary');
  const duplicates = opts.group.members.filter((m) => m.role === 'duplicate');
  if (!primary || duplicates.length === 0) throw new Error('the DR workload needs a primary and a duplicate');
  const aad = opts.aad ?? ['dr-workload', opts.group.id];
  const startedMs = performance.now();
  const counts = { wraps: 0, unwraps: 0, wrapFailures: 0, unwrapFailures: 0, mismatches: 0, olderVersionUnwraps: 0 };
  const failureLog: DrFailure[] = [];
  const versions = new Set<string>();
  const waiters: Array<{ afterMs: number; resolve: () => void }> = [];
  let stopping = false;
  let stoppedMs: number | undefined;

  function fail(f: Omit<DrFailure, 'atMs'>): void {
    failureLog.push({ atMs: performance.now(), ...f });
  }

  function finished(iterationStartMs: number): void {
    for (let i = waiters.length - 1; i >= 0; i--) {
      if (waiters[i]!.afterMs <= iterationStartMs) waiters.splice(i, 1)[0]!.resolve();
    }
  }

  async function iteration(): Promise<void> {
    const dek = randomBytes(32);
    try {
      let wrapped: { ciphertext: string; keyVersionId: string };
      try {
        wrapped = await kp.wrap(refOf(primary!), dek, aad);
        counts.wraps++;
        versions.add(wrapped.keyVersionId);
      } catch (err) {
        counts.wrapFailures++;
        fail({ op: 'wrap', role: primary!.role, region: primary!.region, crn: primary!.crn, reason: reasonOf(err) });
        return;
      }
      await Promise.all(
        duplicates.map(async (d) => {
          counts.unwraps++;
          const where = { op: 'unwrap' as const, role: d.role, region: d.region, crn: d.crn };
          try {
            const res = await kp.unwrap(refOf(d), wrapped.ciphertext, aad);
            const same = res.plaintext.equals(dek);
            res.plaintext.fill(0);
            if (same && res.rewrappedKeyVersionId) counts.olderVersionUnwraps++;
            if (!same) {
              counts.mismatches++;
              fail({ ...where, wrappedVersionId: wrapped.keyVersionId, reason: 'PLAINTEXT_MISMATCH' });
            }
          } catch (err) {
            counts.unwrapFailures++;
            fail({ ...where, wrappedVersionId: wrapped.keyVersionId, reason: reasonOf(err) });
          }
        }),
      );
    } finally {
      dek.fill(0);
    }
  }

  async function loop(): Promise<void> {
    while (!stopping) {
      const t = performance.now();
      await iteration();
      finished(t);
    }
  }

  const loops = Array.from({ length: opts.concurrency ?? 2 }, () => loop());

  function stats(): DrWorkloadStats {
    const failures = counts.wrapFailures + counts.unwrapFailures + counts.mismatches;
    return {
      ...counts,
      failures,
      failureLog: [...failureLog],
      wrappedVersions: [...versions],
      durationMs: (stoppedMs ?? performance.now()) - startedMs,
    };
  }

  return {
    stats,
    settle() {
      if (stopping) return Promise.resolve();
      return new Promise<void>((resolve) => waiters.push({ afterMs: performance.now(), resolve }));
    },
    async stop() {
      stopping = true;
      await Promise.all(loops);
      stoppedMs ??= performance.now();
      for (const w of waiters.splice(0)) w.resolve();
      return stats();
    },
  };
}

/** One line for an assertion message or the report (no DEK, no ciphertext). */
export function describeFailure(f: DrFailure, originMs: number): string {
  const v = f.wrappedVersionId ? ` (wrapped under ${f.wrappedVersionId})` : '';
  return `+${Math.round(f.atMs - originMs)} ms ${f.op} at ${f.role} ${f.region}${v}: ${f.reason}`;
}
