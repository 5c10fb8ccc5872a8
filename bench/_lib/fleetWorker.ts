/**
 * The fleet benchmark's worker process: the `rotate` function's composition (functions/shared.ts `buildCore` from
 * the environment, `runTick` with the function's tick config) running scheduler ticks back to back, as if the cron
 * fired again the moment a tick ended, until `--groups` rotations completed or `--budget-ms` passed.
 * Prints one JSON line per tick and a final `{"done": …}` line (peak RSS, Key Protect requests by status).
 *
 *   node --import tsx bench/_lib/fleetWorker.ts --groups 100 --budget-ms 240000 [--parallel-ticks 1]
 * (environment: IAM_URL, LOCKSTEP_API_KEY, LOCKSTEP_KP_ENDPOINTS, CLOUDANT_URL, CLOUDANT_DB_PREFIX, …)
 */
import { parseArgs } from 'node:util';
import { buildCore, clock } from '../../functions/shared.js';
import { runTick, type TickSummary } from '../../src/app/tick.js';
import { countHttp } from './common.js';

const { values } = parseArgs({
  options: {
    groups: { type: 'string', default: '100' },
    'budget-ms': { type: 'string', default: '240000' },
    'parallel-ticks': { type: 'string', default: '1' },
    'tick-ms': { type: 'string', default: '120000' },
  },
});
const GROUPS = Number(values.groups);
const BUDGET_MS = Number(values['budget-ms']);
const PARALLEL = Number(values['parallel-ticks']);
const TICK_MS = Number(values['tick-ms']);

const kpOrigins = new Set(
  Object.values(JSON.parse(process.env.LOCKSTEP_KP_ENDPOINTS ?? '{}') as Record<string, string>).map(
    (u) => new URL(u).host,
  ),
);
const http = countHttp(() => kpOrigins);

const d = await buildCore('rotate', process.env, (r) => ({
  concurrency: r.int('LOCKSTEP_TICK_CONCURRENCY', 4, 1, 32),
  stopClaimingMarginMs: r.int('LOCKSTEP_TICK_MARGIN_MS', 20_000, 0, 110_000),
  requestBudgetPerInstance: r.int('LOCKSTEP_KP_BUDGET_PER_INSTANCE', 200, 1, 100_000),
}));

const started = Date.now();
let completed = 0;
let failed = 0;
let ticks = 0;
let idleTicks = 0;
let stop = false;
const emit = (o: unknown) => process.stdout.write(`${JSON.stringify(o)}\n`);

async function lane(lane: number): Promise<void> {
  while (!stop) {
    if (Date.now() - started > BUDGET_MS) {
      stop = true;
      break;
    }
    const t0 = Date.now();
    let s: TickSummary;
    try {
      s = await runTick(
        {
          service: d.service,
          stores: d.stores,
          clock,
          logger: d.logger,
          config: {
            concurrency: d.extra.concurrency,
            stopClaimingMarginMs: d.extra.stopClaimingMarginMs,
            requestBudgetPerInstance: d.extra.requestBudgetPerInstance,
          },
        },
        { deadlineAtMs: t0 + TICK_MS, holder: `bench-tick-${lane}-${ticks}`, triggerId: `bench-${ticks}` },
      );
    } catch (err) {
      emit({ tickError: err instanceof Error ? err.message : String(err) });
      await new Promise((r) => setTimeout(r, 1000));
      continue;
    }
    ticks++;
    completed += s.completed;
    failed += s.failed;
    const reasons: Record<string, number> = {};
    for (const x of s.deferred) reasons[x.reason] = (reasons[x.reason] ?? 0) + 1;
    emit({
      tick: ticks,
      lane,
      ms: Date.now() - t0,
      started: s.started,
      resumed: s.resumed,
      completed: s.completed,
      degraded: s.degraded,
      failed: s.failed,
      deferred: reasons,
      totalCompleted: completed,
    });
    if (completed >= GROUPS) stop = true;
    const progress = s.started + s.resumed + s.completed;
    if (progress === 0) {
      idleTicks++;
      // Nothing to do now (e.g. runs waiting for their backoff): wait a little, as the next cron ping would.
      await new Promise((r) => setTimeout(r, 1000));
      if (idleTicks > 120) stop = true;
    } else idleTicks = 0;
  }
}

await Promise.all(Array.from({ length: PARALLEL }, (_, i) => lane(i)));
emit({
  done: true,
  elapsedMs: Date.now() - started,
  ticks,
  completed,
  failed,
  peakRssMb: process.resourceUsage().maxRSS / 1024,
  http: {
    total: http.tally.total,
    byStatus: Object.fromEntries(http.tally.byStatus),
    okByInstance: Object.fromEntries(http.tally.okByInstance),
    rateLimitedByInstance: Object.fromEntries(http.tally.rateLimitedByInstance),
  },
});
process.exit(0);
