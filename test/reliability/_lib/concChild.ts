/**
 * One orchestrator process of the concurrency scenario: what the `rotate` function runs (functions/rotate.ts +
 * functions/shared.ts — the scheduler tick over the real Key Protect client via IAM, the Cloudant stores and the
 * per-instance request-rate budget), in a loop, with the clock read from the emulator (the service clock; the test
 * process moves it). Counts lease acquisitions per kind (`tick:`, `group:`, `token:`) and how many found the lease
 * held, by wrapping the real lease repository (counting only; every call goes to the store).
 *
 * Protocol: the child prints `READY <pid>` when its adapters are built and starts ticking when it reads `GO` on
 * stdin (so it can start while the test is still creating groups); then `TICK <TickSummary json>` per tick,
 * `STATS <json>` when it stops (on SIGTERM, after the tick in flight), `FAILED <message>` on a crash (stdout, one line
 * each). Logs (JSON lines) go to stderr.
 *
 * `LOCKSTEP_CONC_SABOTAGE=token-lease` makes every `token:` lease acquisition succeed without the store (no
 * serialisation of import tokens): only to show by hand that the scenario detects nonce conflicts; never set by tests.
 *
 * Env: LOCKSTEP_KP_ENDPOINTS (JSON region→url), LOCKSTEP_IAM_URL, LOCKSTEP_API_KEY, LOCKSTEP_ADMIN_URL,
 * LOCKSTEP_COUCH_URL, LOCKSTEP_DB_PREFIX, LOCKSTEP_CONC_HOLDER; optional LOCKSTEP_CONC_PAUSE_MS (wall ms after a tick
 * that worked, default 150; after an idle tick 6–10× that — a real cron pings every few minutes),
 * LOCKSTEP_CONC_INVOCATION_MS (simulated invocation length, default 60 000 as Code Engine), LOCKSTEP_TICK_CONCURRENCY
 * (default 4), LOCKSTEP_KP_REQUESTS_PER_SECOND (default 10, as functions/shared.ts), LOCKSTEP_CONC_MAX_LIFE_MS (hard
 * cap, default 20 min).
 */
import type { LeaseRepository, Stores } from '../../../src/app/index.js';
import { createJsonLogger, createRotationService, cryptoRandom } from '../../../src/app/index.js';
import { runTick, withRequestRateBudget } from '../../../src/app/tick.js';
import type { Group } from '../../../src/core/index.js';
import { nextDueAtMs } from '../../../src/scheduling/index.js';
import { emulatorClock, kpClientFromEnv, requiredEnv, storesFromEnv } from '../../support/childProcess.js';

/** Lease statistics one child reports at the end. */
export interface ConcLeaseStats {
  acquired: Record<string, number>;
  held: Record<string, number>;
  /** Times one holder found the same lease held 20 times in a row (the runner's token wait then gives up). */
  longWaits: Record<string, number>;
}

/** What a child prints on `STATS`. */
export interface ConcChildStats {
  holder: string;
  ticks: number;
  tickErrors: number;
  clockSyncs: number;
  leases: ConcLeaseStats;
}

const env = requiredEnv;
const num = (k: string, d: number): number => {
  const v = Number(process.env[k]);
  return Number.isFinite(v) && v > 0 ? v : d;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function countingLeases(inner: LeaseRepository, stats: ConcLeaseStats, sabotage: boolean): LeaseRepository {
  const kind = (name: string) => name.split(':')[0] ?? name;
  const streaks = new Map<string, number>();
  return {
    async acquire(name, holder, ttlMs, nowMs) {
      const l =
        sabotage && name.startsWith('token:')
          ? { name, holder, fence: 0, expiresAtMs: nowMs + ttlMs, rev: 'sabotage' }
          : await inner.acquire(name, holder, ttlMs, nowMs);
      const k = kind(name);
      const bucket = l ? stats.acquired : stats.held;
      bucket[k] = (bucket[k] ?? 0) + 1;
      const streak = l ? 0 : (streaks.get(`${holder} ${name}`) ?? 0) + 1;
      streaks.set(`${holder} ${name}`, streak);
      if (streak > 0 && streak % 20 === 0) stats.longWaits[k] = (stats.longWaits[k] ?? 0) + 1;
      return l;
    },
    renew: (lease, ttlMs, nowMs) =>
      lease.rev === 'sabotage'
        ? Promise.resolve({ ...lease, expiresAtMs: nowMs + ttlMs })
        : inner.renew(lease, ttlMs, nowMs),
    release: (lease) => (lease.rev === 'sabotage' ? Promise.resolve() : inner.release(lease)),
    assertHeld: (lease, nowMs) => (lease.rev === 'sabotage' ? Promise.resolve() : inner.assertHeld(lease, nowMs)),
  };
}

async function main(): Promise<void> {
  const holder = env('LOCKSTEP_CONC_HOLDER');
  const pauseMs = num('LOCKSTEP_CONC_PAUSE_MS', 150);
  const invocationMs = num('LOCKSTEP_CONC_INVOCATION_MS', 60_000);
  const clock = emulatorClock();
  await clock.sync();
  // Keep following the emulator clock between ticks too (the test moves it only when the fleet is idle or waiting).
  const syncTimer = setInterval(() => void clock.sync().catch(() => undefined), 250);
  syncTimer.unref();
  const logger = createJsonLogger({
    level: 'info',
    clock,
    base: { function: 'rotate', process: holder },
    write: (l) => process.stderr.write(`${l}\n`),
  });
  const stats: ConcChildStats = {
    holder,
    ticks: 0,
    tickErrors: 0,
    clockSyncs: 0,
    leases: { acquired: {}, held: {}, longWaits: {} },
  };
  const cloudant = await storesFromEnv(logger);
  const stores: Stores = {
    ...cloudant,
    leases: countingLeases(cloudant.leases, stats.leases, process.env.LOCKSTEP_CONC_SABOTAGE === 'token-lease'),
  };
  // As functions/shared.ts buildCore: the Key Protect client behind the per-instance request-rate budget.
  const kp = withRequestRateBudget(kpClientFromEnv({ random: cryptoRandom, clock, logger }), {
    perSecond: num('LOCKSTEP_KP_REQUESTS_PER_SECOND', 10),
    clock,
  });
  const service = createRotationService({
    kp,
    stores,
    clock,
    random: cryptoRandom,
    logger,
    nextDueAtMs: (group: Group, completedAtMs: number) =>
      nextDueAtMs(group.schedule, {
        lastRotatedAtMs: completedAtMs,
        createdAtMs: group.createdAtMs,
        nowMs: completedAtMs,
      }),
  });

  let stopping = false;
  let go: () => void = () => undefined;
  const started = new Promise<void>((resolve) => {
    go = resolve;
  });
  process.on('SIGTERM', () => {
    stopping = true;
    go();
  });
  let input = '';
  process.stdin.on('data', (d: Buffer) => {
    input += d.toString();
    if (input.includes('GO\n')) go();
  });
  // Never outlive the test: stop when its end of stdin closes (it died) or after a hard cap.
  process.stdin.on('end', () => {
    stopping = true;
    go();
  });
  setTimeout(() => process.exit(2), num('LOCKSTEP_CONC_MAX_LIFE_MS', 20 * 60_000)).unref();
  process.stdout.write(`READY ${process.pid}\n`);
  await started;
  let n = 0;
  while (!stopping) {
    await clock.sync().catch(() => undefined);
    n += 1;
    let worked = false;
    try {
      const summary = await runTick(
        {
          service,
          stores,
          clock,
          logger,
          config: { concurrency: num('LOCKSTEP_TICK_CONCURRENCY', 4) },
        },
        { deadlineAtMs: clock.nowMs() + invocationMs, holder: `${holder}-t${n}`, triggerId: `cron-${holder}-${n}` },
      );
      stats.ticks += 1;
      worked = summary.started + summary.resumed + summary.caughtUp > 0;
      process.stdout.write(`TICK ${JSON.stringify(summary)}\n`);
    } catch (err) {
      // A whole tick failing is surfaced to operators (the function invocation fails): the test counts it.
      stats.tickErrors += 1;
      logger.error('tick failed', { error: err instanceof Error ? err.message : String(err) });
    }
    await sleep(worked ? pauseMs : pauseMs * (6 + Math.random() * 4));
  }
  clearInterval(syncTimer);
  stats.clockSyncs = clock.syncs;
  process.stdout.write(`STATS ${JSON.stringify(stats)}\n`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stdout.write(`FAILED ${err instanceof Error ? err.message : 'unknown'}\n`);
    process.exit(1);
  },
);
