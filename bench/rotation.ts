/**
 * Benchmark 1 — one group rotation with emulated per-region round-trip latency.
 *
 *   npx tsx bench/rotation.ts [--dups 1,2,4,8] [--reps 3] [--latency 50] [--jitter 10]
 *
 * For each duplicate count: wall time of `rotateNow` + `advanceRun` (the whole stage-verify-promote-prove-record
 * saga, over real HTTP to the Key Protect emulator and the embedded store) vs
 *  - the critical-path bound: the minimum number of dependent Key Protect round trips of the protocol (derived in
 *    the result file) × the round-trip time measured in the same repetition, and
 *  - a deliberately sequential baseline (bench/_lib/sequentialRotation.ts) on a twin group, same repetition.
 * Writes bench/results/rotation.md and .json.
 */
import { parseArgs } from 'node:util';
import { DEFAULT_ROTATION_CONFIG } from '../src/app/index.js';
import type { Group } from '../src/core/index.js';
import {
  coveredMs,
  coveredOnlyByMs,
  fmtMs,
  fmtRatio,
  installRsaKeyCache,
  instrumentKp,
  instrumentStores,
  machineLine,
  mdTable,
  median,
  type Span,
  summarize,
  writeResult,
} from './_lib/common.js';
import { sequentialRotation } from './_lib/sequentialRotation.js';
import { createBenchGroup, startBenchStack } from './_lib/stack.js';

const { values } = parseArgs({
  options: {
    dups: { type: 'string', default: '1,2,4,8' },
    reps: { type: 'string', default: '3' },
    latency: { type: 'string', default: '50' },
    jitter: { type: 'string', default: '10' },
  },
});
const DUPS = values.dups.split(',').map(Number);
const REPS = Number(values.reps);
const LATENCY = Number(values.latency);
const JITTER = Number(values.jitter);
const HOUR = 3_600_000;
const STAGE_CONCURRENCY = DEFAULT_ROTATION_CONFIG.stageConcurrency;

/**
 * The critical path of one rotation, in dependent Key Protect round trips, independent of the duplicate count:
 * every step's calls that do not depend on each other are counted once (they can run in parallel), steps follow
 * each other because each is persisted before the next starts (design: "every step is persisted before the next").
 */
const CRITICAL_PATH: Array<[string, number, string]> = [
  ['plan', 1, 'GET key ∥ GET versions of every member, all in parallel (state, lastRotateDate, snapshot version)'],
  ['generate + escrow', 1, 'wrap the new material under the escrow key (the run is persisted with the ciphertext)'],
  [
    'stage (all duplicates in parallel)',
    4,
    'POST import_token → GET import_token → rotate → GET versions (read-back). The re-check GET versions and the escrow unwrap do not depend on the token and run alongside POST import_token',
  ],
  ['verify', 2, 'wrap at one staged duplicate → unwrap at every other duplicate in parallel'],
  ['promote', 4, 'primary: POST import_token → GET import_token → rotate → GET versions (same overlap as stage)'],
  [
    'prove',
    2,
    'wrap at the primary ∥ wrap at every duplicate → unwrap each ciphertext at the other side(s), all in parallel',
  ],
  ['record + release', 0, 'store only (lineage append, group update, lease release): no Key Protect call'],
];
const BOUND_RTTS = CRITICAL_PATH.reduce((a, [, n]) => a + n, 0);

/** Dependent Key Protect round trips of the implementation as read from src/app (runner.ts, rotationService.ts). */
function implementationRtts(d: number): Array<[string, number]> {
  const waves = Math.ceil(d / STAGE_CONCURRENCY); // one duplicate per instance here
  return [
    ['rotateNow: GET key ∥ GET versions of every member, recorded as the plan', 1],
    ['plan (done by the claim)', 0],
    ['generate + escrow', 1],
    [
      `stage: ⌈instances/${STAGE_CONCURRENCY}⌉ waves of 4 ([escrow unwrap ∥ versions ∥ POST token], GET token, rotate, versions)`,
      4 * waves,
    ],
    ['verify: wrap, then every other duplicate unwraps in parallel', 2],
    ['promote: [escrow unwrap ∥ versions ∥ POST token], GET token, rotate, versions', 4],
    ['prove: forward (wrap at primary → d unwraps) ∥ d reverse canaries (wrap → unwrap), all in parallel', 2],
  ];
}

interface Rep {
  dups: number;
  rep: number;
  rttMs: number;
  boundMs: number;
  productMs: number;
  baselineMs: number;
  ok: boolean;
  baselineOk: boolean;
  kpCalls: number;
  storeCalls: number;
  kpBusyMs: number;
  storeOnlyMs: number;
  otherMs: number;
  steps: Record<string, number>;
}

async function main(): Promise<void> {
  const cached = await installRsaKeyCache(3);
  const maxDups = Math.max(...DUPS);
  const stack = await startBenchStack({ instancesPerRegion: Math.max(1, Math.ceil(maxDups / 2)) });
  const spans: Span[] = [];
  const kp = instrumentKp(stack.kp, spans);
  const stores = instrumentStores(stack.stores, spans);
  const marks: Array<{ t: number; step: string }> = [];
  const service = stack.service({
    kp,
    stores,
    afterPersist: (run: { step: string }) => {
      marks.push({ t: performance.now(), step: run.step });
    },
  });
  const reps: Rep[] = [];
  try {
    console.error(`creating groups (1 + ${DUPS.join('/')} duplicates), no latency…`);
    const groups = new Map<number, { product: Group; baseline: Group; baselineGen: number }>();
    for (const d of DUPS) {
      const product = await createBenchGroup(stack, `rot-d${d}`, d);
      const baseline = await createBenchGroup(stack, `seq-d${d}`, d);
      groups.set(d, { product, baseline, baselineGen: 1 });
    }
    for (const region of stack.regions) {
      stack.emu.kp.setFaults({ region }, { latencyMs: LATENCY, latencyJitterMs: JITTER });
    }
    const calibrate = async (g: Group): Promise<number> => {
      const xs: number[] = [];
      for (let i = 0; i < 12; i++) {
        const m = g.members[i % g.members.length]!;
        const t = performance.now();
        await stack.kp.getKey({ region: m.region, instanceId: m.instanceId, keyId: m.keyId });
        xs.push(performance.now() - t);
      }
      return median(xs);
    };
    // warm-up: one rotation of the smallest group (JIT, connection pools, token pool)
    {
      stack.clock.advance(HOUR + 60_000);
      const g = groups.get(DUPS[0]!)!;
      const { runId } = await service.rotateNow(g.product.id, { trigger: { kind: 'operator', by: 'bench-warmup' } });
      await service.advanceRun(runId, { deadlineAtMs: stack.clock.nowMs() + HOUR, holder: 'bench' });
    }
    for (let rep = 1; rep <= REPS; rep++) {
      for (const d of DUPS) {
        const g = groups.get(d)!;
        stack.clock.advance(HOUR + 60_000);
        const rtt1 = await calibrate(g.product);

        spans.length = 0;
        marks.length = 0;
        const t0 = performance.now();
        const { runId } = await service.rotateNow(g.product.id, { trigger: { kind: 'operator', by: 'bench' } });
        const tAdvance = performance.now();
        const res = await service.advanceRun(runId, { deadlineAtMs: stack.clock.nowMs() + HOUR, holder: 'bench' });
        const t1 = performance.now();
        const productSpans = [...spans];
        const kpSpans = productSpans.filter((s) => s.kind === 'kp');
        const storeSpans = productSpans.filter((s) => s.kind === 'store');
        const steps: Record<string, number> = { rotateNow: tAdvance - t0 };
        let cur = 'generate'; // rotateNow records the plan: the run starts at generate
        let since = tAdvance;
        for (const m of marks) {
          if (m.step !== cur) {
            steps[cur] = (steps[cur] ?? 0) + (m.t - since);
            cur = m.step;
            since = m.t;
          }
        }
        steps[cur] = (steps[cur] ?? 0) + (t1 - since);

        const rtt2 = await calibrate(g.baseline);
        g.baselineGen += 1;
        const b0 = performance.now();
        const b = await sequentialRotation(stack.kp, stack.stores, g.baseline, g.baselineGen);
        const b1 = performance.now();

        const rttMs = (rtt1 + rtt2) / 2;
        const kpBusyMs = coveredMs(kpSpans, t0, t1);
        const storeOnlyMs = coveredOnlyByMs(storeSpans, kpSpans, t0, t1);
        const r: Rep = {
          dups: d,
          rep,
          rttMs,
          boundMs: BOUND_RTTS * rttMs,
          productMs: t1 - t0,
          baselineMs: b1 - b0,
          ok: res.status === 'completed',
          baselineOk: b.ok,
          kpCalls: kpSpans.length,
          storeCalls: storeSpans.length,
          kpBusyMs,
          storeOnlyMs,
          otherMs: t1 - t0 - kpBusyMs - storeOnlyMs,
          steps,
        };
        reps.push(r);
        console.error(
          `  d=${d} rep ${rep}: product ${fmtMs(r.productMs)} (${res.status}), baseline ${fmtMs(r.baselineMs)}, bound ${fmtMs(r.boundMs)} (rtt ${r.rttMs.toFixed(1)} ms)`,
        );
      }
    }
  } finally {
    await stack.close();
  }
  await report(reps, cached);
}

async function report(reps: Rep[], cachedPairs: number): Promise<void> {
  const rows: Array<Array<string | number>> = [];
  const detail: Array<Array<string | number>> = [];
  const stepRows: Array<Array<string | number>> = [];
  const perDups: Record<string, unknown>[] = [];
  const stepNames = ['rotateNow', 'plan', 'generate', 'stage', 'verify', 'promote', 'prove', 'record', 'release'];
  for (const d of DUPS) {
    const rs = reps.filter((r) => r.dups === d);
    const product = summarize(rs.map((r) => r.productMs));
    const baseline = summarize(rs.map((r) => r.baselineMs));
    const bound = summarize(rs.map((r) => r.boundMs));
    const vsBound = summarize(rs.map((r) => r.productMs / r.boundMs));
    const vsBaseline = summarize(rs.map((r) => r.productMs / r.baselineMs));
    const impl = implementationRtts(d).reduce((a, [, n]) => a + n, 0);
    const effRtts = median(rs.map((r) => r.kpBusyMs / r.rttMs));
    const failures = rs.filter((r) => !r.ok).length;
    rows.push([
      `1 + ${d}`,
      `${fmtMs(product.median)} (${fmtMs(product.min)}–${fmtMs(product.max)})`,
      `${fmtMs(bound.median)} (${BOUND_RTTS} RTT)`,
      `${fmtRatio(vsBound.median)} (${fmtRatio(vsBound.min)}–${fmtRatio(vsBound.max)})`,
      `${fmtMs(baseline.median)} (${fmtMs(baseline.min)}–${fmtMs(baseline.max)})`,
      `${fmtRatio(vsBaseline.median)}`,
      vsBound.median <= 1.2 ? 'yes' : '**no**',
      failures === 0 ? `${rs.length}/${rs.length}` : `**${rs.length - failures}/${rs.length}**`,
    ]);
    detail.push([
      `1 + ${d}`,
      `${median(rs.map((r) => r.rttMs)).toFixed(1)} ms`,
      impl,
      effRtts.toFixed(1),
      fmtMs(median(rs.map((r) => r.kpBusyMs))),
      fmtMs(median(rs.map((r) => r.storeOnlyMs))),
      fmtMs(median(rs.map((r) => r.otherMs))),
      Math.round(median(rs.map((r) => r.kpCalls))),
      Math.round(median(rs.map((r) => r.storeCalls))),
    ]);
    stepRows.push([`1 + ${d}`, ...stepNames.map((s) => fmtMs(median(rs.map((r) => r.steps[s] ?? 0))))]);
    perDups.push({
      dups: d,
      productMs: product,
      baselineMs: baseline,
      boundMs: bound,
      ratioToBound: vsBound,
      ratioToBaseline: vsBaseline,
      boundRtts: BOUND_RTTS,
      implementationRtts: impl,
      effectiveSequentialRtts: effRtts,
      failures,
    });
  }
  const md = [
    '# Benchmark 1 — one group rotation',
    '',
    `\`npx tsx bench/rotation.ts --dups ${DUPS.join(',')} --reps ${REPS} --latency ${LATENCY} --jitter ${JITTER}\` — ${machineLine()}.`,
    '',
    `Every Key Protect region of the emulator delays each request by ${LATENCY} ms + U[0, ${JITTER}] ms (fault injection,`,
    "server side). One repetition = `rotateNow` + `advanceRun` of a group (the operator's *rotate now*: plan, generate +",
    'escrow, stage, verify, promote, prove, record, release) over real HTTP: IBM Key Protect SDK → emulator, Cloudant SDK →',
    'embedded store (in-process, no added latency). Per repetition and duplicate count, in the same minute: the round-trip',
    'time RTT (median of 12 sequential `GET /keys/{id}`, before the rotation and before the baseline, averaged), the',
    'rotation, and the sequential baseline on a twin group. Ratios are per repetition, then the median (range) is shown.',
    `The emulator's RSA-4096 import-token keys come from a cache of ${cachedPairs} pre-generated pairs (see _lib/common.ts):`,
    'real Key Protect answers POST /import_token in one round trip; generating a key pair here takes 1–4 s of CPU.',
    '',
    mdTable(
      [
        'members (primary + duplicates)',
        'rotation, median (range)',
        'critical-path bound',
        'ratio to bound',
        'sequential baseline',
        'ratio to baseline',
        'target ≤ 1.2× bound',
        'completed',
      ],
      rows,
    ),
    '',
    '## Where the time goes',
    '',
    '*KP busy* = time with at least one Key Protect call in flight; *effective sequential RTTs* = KP busy ÷ RTT (how many',
    'round trips deep the implementation really is); *store only* = time with a store call and no Key Protect call in',
    'flight; *other* = neither (CPU: sealing, JSON, the decider, event-loop queueing on this loaded machine).',
    '',
    mdTable(
      [
        'members',
        'RTT',
        'dependent RTTs (implementation, by reading the code)',
        'effective sequential RTTs (measured)',
        'KP busy',
        'store only',
        'other',
        'KP calls',
        'store calls',
      ],
      detail,
    ),
    '',
    'Median time per saga step (from the run document transitions):',
    '',
    mdTable(['members', ...stepNames], stepRows),
    '',
    `## The critical-path bound: ${BOUND_RTTS} dependent round trips`,
    '',
    mdTable(
      ['step', 'RTTs', 'why'],
      CRITICAL_PATH.map(([s, n, why]) => [s, n, why]),
    ),
    '',
    'Not counted, and why: the token leases, run saves and lineage append are store round trips (reported above as',
    "*store only*); the bound is per the design's step order, so it does **not** assume cross-step overlap such as",
    "fetching the primary's import token while duplicates are staged (that would take promote from 4 to 2 RTTs and the",
    'bound to 12). RTT is the median of a single GET; a step that waits for the slowest of several parallel calls pays',
    `up to the jitter (${JITTER} ms) more, so a perfect implementation would measure slightly above 1.0×.`,
    '',
    'Dependent round trips of the implementation, by step (src/app/runner.ts and rotationService.ts at the commit measured):',
    '',
    mdTable(
      ['step', ...DUPS.map((d) => `1 + ${d}`)],
      implementationRtts(1)
        .map(([label], i) => [label, ...DUPS.map((d) => implementationRtts(d)[i]![1])])
        .concat([['total', ...DUPS.map((d) => implementationRtts(d).reduce((x, [, n]) => x + n, 0))]]),
    ),
    '',
    '## Gaps and fixes',
    '',
    'Done: **prove** and **verify** ran their canary unwraps one after another (1 + 3d and 1 + (d−1) RTTs); now in',
    '   parallel. **Stage/promote** awaited the escrow unwrap, then the re-check, before the import token (6 RTTs); the',
    '   client now fetches the token while the unwrap and re-check run and seals only when both are in (4 RTTs), and stage',
    '   goes by instance (one secure import per instance at a time), up to `stageConcurrency` (now 8) instances at once.',
    '   **rotateNow** read every member and the plan read them again; the claim now records its reading as the plan.',
    '   Before these (same bench, load ≈ 0.2–3): 1+1 1286 ms = 1.63×, 1+4 1361 ms = 1.69×, 1+8 1751 ms = 2.21× the bound.',
    'What remains above the bound: store round trips (run saves, token leases, lineage append, about 30–50 per rotation)',
    '   and the slowest of parallel calls paying the jitter.',
    '',
  ].join('\n');
  await writeResult('rotation', md, {
    scenario: 'rotation',
    params: { dups: DUPS, reps: REPS, latencyMs: LATENCY, jitterMs: JITTER },
    machine: machineLine(),
    boundRtts: BOUND_RTTS,
    criticalPath: CRITICAL_PATH.map(([step, rtts, why]) => ({ step, rtts, why })),
    perDups,
    reps,
  });
}

await main();
