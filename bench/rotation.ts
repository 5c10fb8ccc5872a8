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
import { type ChildBenchStack, createBenchGroup, startBenchStack } from './_lib/stack.js';

const { values } = parseArgs({
  options: {
    dups: { type: 'string', default: '1,2,4,8' },
    reps: { type: 'string', default: '3' },
    latency: { type: 'string', default: '50' },
    jitter: { type: 'string', default: '10' },
    // The scheduler's path: `startRotation`, as the tick starts a rotation (claim and first pass in one call; the
    // claim's reading overlaps the escrow and the duplicates' import tokens).
    scheduler: { type: 'boolean', default: false },
    // Where the emulator runs: its own process (its server work off the event loop of the code under test) or this one.
    emulator: { type: 'string', default: 'child' },
    // round-trip: the response leaves latency + U[0, jitter] after the request arrived, the emulator's work inside
    // that window; delay: latency + jitter before handling (the emulator's work and queueing come on top).
    'latency-mode': { type: 'string', default: 'round-trip' },
    // Also run the model before (emulator in-process, delay before handling) in the same invocation and print its
    // figures next to these.
    compare: { type: 'boolean', default: false },
    // Print every Key Protect and store call of each repetition (ms from its start) to stderr.
    trace: { type: 'boolean', default: false },
  },
});
const DUPS = values.dups.split(',').map(Number);
const REPS = Number(values.reps);
const LATENCY = Number(values.latency);
const JITTER = Number(values.jitter);
const SCHEDULER = values.scheduler;
type EmulatorMode = 'child' | 'in-process';
type LatencyMode = 'round-trip' | 'delay';
const EMULATOR = values.emulator as EmulatorMode;
const LATENCY_MODE = values['latency-mode'] as LatencyMode;
if (!['child', 'in-process'].includes(EMULATOR)) throw new Error('--emulator must be child or in-process');
if (!['round-trip', 'delay'].includes(LATENCY_MODE)) throw new Error('--latency-mode must be round-trip or delay');
const COMPARE = values.compare;
const RESULT_NAME = SCHEDULER ? 'rotation-scheduled' : 'rotation';
const HOUR = 3_600_000;
const STAGE_CONCURRENCY = DEFAULT_ROTATION_CONFIG.stageConcurrency;

/**
 * The protocol's minimum of dependent Key Protect round trips for one rotation (issue 16's derivation): every call
 * that does not depend on another is counted once, and a step's calls overlap the previous step's run save where
 * nothing forbids it. One duplicate has nothing to cross at verify (7 instead of 8).
 */
const CRITICAL_PATH: Array<[string, number, string]> = [
  [
    '1. plan ∥ escrow ∥ POST import_token',
    1,
    "GET key ∥ GET versions of every member ∥ wrap the new material under the escrow key ∥ POST import_token in every member's instance (a token carries no material)",
  ],
  ['2. GET import_token', 1, 'in every instance, while the run is persisted with the escrow ciphertext'],
  ['3. rotate the duplicates', 1, 'secure import with the token of (2): first send, on the snapshot of (1)'],
  [
    '4. canary wrap at every duplicate',
    1,
    'its response names the answering key version: it is also the read-back of (3)',
  ],
  ['5. cross-unwrap (verify gate)', 1, "unwrap one duplicate's canary at every other duplicate (0 with one duplicate)"],
  ['6. rotate the primary', 1, 'with the token fetched in (2) (its instance lease held meanwhile)'],
  ['7. canary wrap at the primary', 1, 'read-back of (6)'],
  ['8. prove', 1, "unwrap the primary's canary at every duplicate ∥ every duplicate's canary (from 4) at the primary"],
  ['record + release', 0, 'store only (lineage append, group update, lease release): no Key Protect call'],
];
const boundRtts = (d: number): number => CRITICAL_PATH.reduce((a, [, n]) => a + n, 0) - (d === 1 ? 1 : 0);
const BOUND_RTTS = boundRtts(2);

/** Dependent Key Protect round trips of the implementation as read from src/app (runner.ts, rotationService.ts). */
function implementationRtts(d: number): Array<[string, number]> {
  const waves = Math.ceil(d / STAGE_CONCURRENCY); // one duplicate per instance here
  return [
    ...((SCHEDULER
      ? [
          [
            "claim (startRotation): GET key ∥ GET versions of every member ∥ escrow wrap ∥ the duplicates' POST import_token (under their instances' leases); the run is created with its plan and its escrow",
            1,
          ],
        ]
      : [
          ['rotateNow: GET key ∥ GET versions of every member, recorded as the plan', 1],
          ["generate: escrow wrap ∥ the duplicates' POST import_token (each under its instance lease)", 1],
        ]) as Array<[string, number]>),
    [
      `stage: ⌈instances/${STAGE_CONCURRENCY}⌉ waves of GET import_token (∥ the run save; the primary's POST + GET start here), rotate (first send: no re-check; the pass's own material: no escrow unwrap), canary wrap (read-back)`,
      3 * waves,
    ],
    [
      "verify: the first duplicate's read-back canary unwrapped at every other duplicate (none with one duplicate)",
      d === 1 ? 0 : 1,
    ],
    ['promote: rotate with the prefetched token, canary wrap (read-back)', 2],
    ["prove: the primary's read-back unwrapped at every duplicate ∥ each duplicate's at the primary", 1],
  ];
}

/**
 * Key Protect HTTP requests of one rotation, from the port calls: `prepareImportToken` is POST + GET; a rotate is
 * one request with a prepared token and three (POST, GET, rotate) without; everything else is one.
 */
function kpRequests(spans: Span[]): number {
  const count = (op: string) => spans.filter((s) => s.op === op).length;
  const prepared = count('prepareImportToken');
  const rotates = count('rotateWithMaterial');
  const others = spans.length - prepared - rotates;
  return others + 2 * prepared + rotates + 2 * Math.max(0, rotates - prepared);
}

/** The chain's requests: plan 2 per member, escrow 1, per member POST + GET + rotate + wrap, verify d − 1, prove 2d. */
const minRequests = (d: number): number => 2 * (d + 1) + 1 + 4 * (d + 1) + (d - 1) + 2 * d;

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
  kpRequests: number;
  storeCalls: number;
  kpBusyMs: number;
  storeOnlyMs: number;
  otherMs: number;
  steps: Record<string, number>;
}

/** One model of Key Protect's latency: where the emulator runs and how the latency is injected. */
interface Model {
  emulator: EmulatorMode;
  latencyMode: LatencyMode;
}
const modelName = (m: Model) =>
  `emulator ${m.emulator}, ${m.latencyMode === 'round-trip' ? 'round-trip latency' : 'delay before handling'}`;

async function main(): Promise<void> {
  const cached = await installRsaKeyCache(3);
  const model: Model = { emulator: EMULATOR, latencyMode: LATENCY_MODE };
  const before: Model = { emulator: 'in-process', latencyMode: 'delay' };
  const compare = COMPARE && (model.emulator !== before.emulator || model.latencyMode !== before.latencyMode);
  console.error(`model: ${modelName(model)}`);
  const reps = await measure(model);
  let beforeReps: Rep[] | undefined;
  if (compare) {
    console.error(`model before: ${modelName(before)}`);
    beforeReps = await measure(before);
  }
  await report(reps, cached, beforeReps);
}

async function measure(model: Model): Promise<Rep[]> {
  const maxDups = Math.max(...DUPS);
  const instancesPerRegion = Math.max(1, Math.ceil(maxDups / 2));
  const stack: ChildBenchStack =
    model.emulator === 'child'
      ? await startBenchStack({ instancesPerRegion, emulatorProcess: 'child' })
      : await startBenchStack({ instancesPerRegion });
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
  /** One rotation on the measured path; `tClaimed` when the claim returns before the pass (the operator's path). */
  const rotateOnce = async (groupId: string, by: string) => {
    const deadlineAtMs = () => stack.clock.nowMs() + HOUR;
    if (SCHEDULER) {
      const trigger = { kind: 'schedule' as const, by };
      const { result } = await service.startRotation(groupId, { trigger, deadlineAtMs: deadlineAtMs(), holder: by });
      return { res: result, tClaimed: undefined };
    }
    const { runId } = await service.rotateNow(groupId, { trigger: { kind: 'operator', by } });
    const tClaimed = performance.now();
    return { res: await service.advanceRun(runId, { deadlineAtMs: deadlineAtMs(), holder: by }), tClaimed };
  };
  try {
    console.error(`creating groups (1 + ${DUPS.join('/')} duplicates), no latency…`);
    const groups = new Map<number, { product: Group; baseline: Group; baselineGen: number }>();
    for (const d of DUPS) {
      const product = await createBenchGroup(stack, `rot-d${d}`, d);
      const baseline = await createBenchGroup(stack, `seq-d${d}`, d);
      groups.set(d, { product, baseline, baselineGen: 1 });
    }
    for (const region of stack.regions) {
      await stack.control.setFaults(
        { region },
        model.latencyMode === 'round-trip'
          ? { roundTripMs: LATENCY, roundTripJitterMs: JITTER }
          : { latencyMs: LATENCY, latencyJitterMs: JITTER },
      );
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
      await stack.control.advanceClock(HOUR + 60_000);
      const g = groups.get(DUPS[0]!)!;
      await rotateOnce(g.product.id, 'bench-warmup');
    }
    for (let rep = 1; rep <= REPS; rep++) {
      for (const d of DUPS) {
        const g = groups.get(d)!;
        await stack.control.advanceClock(HOUR + 60_000);
        const rtt1 = await calibrate(g.product);

        spans.length = 0;
        marks.length = 0;
        const t0 = performance.now();
        const { res, tClaimed } = await rotateOnce(g.product.id, 'bench');
        const t1 = performance.now();
        const productSpans = [...spans];
        const kpSpans = productSpans.filter((s) => s.kind === 'kp');
        const storeSpans = productSpans.filter((s) => s.kind === 'store');
        // The claim ends when the run document is written (startRotation goes on into the pass in the same call).
        const claimEnd = tClaimed ?? productSpans.find((s) => s.op === 'runs.create')?.endMs ?? t0;
        const steps: Record<string, number> = { claim: claimEnd - t0 };
        // rotateNow records the plan (the run starts at generate); startRotation also the escrow (it starts at stage)
        let cur = SCHEDULER ? 'stage' : 'generate';
        let since = claimEnd;
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
          boundMs: boundRtts(d) * rttMs,
          productMs: t1 - t0,
          baselineMs: b1 - b0,
          ok: res.status === 'completed',
          baselineOk: b.ok,
          kpCalls: kpSpans.length,
          kpRequests: kpRequests(kpSpans),
          storeCalls: storeSpans.length,
          kpBusyMs,
          storeOnlyMs,
          otherMs: t1 - t0 - kpBusyMs - storeOnlyMs,
          steps,
        };
        reps.push(r);
        if (values.trace) printTrace(productSpans, marks, t0, `1 + ${d}, rep ${rep}`);
        console.error(
          `  d=${d} rep ${rep}: product ${fmtMs(r.productMs)} (${res.status}), baseline ${fmtMs(r.baselineMs)}, bound ${fmtMs(r.boundMs)} (rtt ${r.rttMs.toFixed(1)} ms)`,
        );
      }
    }
  } finally {
    await stack.close();
  }
  return reps;
}

/** One line per call, in start order, with the run's persisted steps interleaved: where the time goes, call by call. */
function printTrace(spans: Span[], marks: Array<{ t: number; step: string }>, t0: number, title: string): void {
  const lines = [
    ...spans.map((s) => ({
      t: s.startMs,
      text: `${(s.startMs - t0).toFixed(1).padStart(7)} → ${(s.endMs - t0).toFixed(1).padStart(7)}  ${s.kind.padEnd(5)} ${s.op}`,
    })),
    ...marks.map((m) => ({ t: m.t, text: `${(m.t - t0).toFixed(1).padStart(7)}            saved  step=${m.step}` })),
  ].sort((a, b) => a.t - b.t);
  console.error(`  trace ${title}:\n${lines.map((l) => `    ${l.text}`).join('\n')}`);
}

/** Median (range) of the rotation and its ratio to the bound, per duplicate count: the figures kept for comparison. */
function headline(reps: Rep[]) {
  return DUPS.map((d) => {
    const rs = reps.filter((r) => r.dups === d);
    return {
      dups: d,
      productMs: summarize(rs.map((r) => r.productMs)),
      ratioToBound: summarize(rs.map((r) => r.productMs / r.boundMs)),
      rttMs: median(rs.map((r) => r.rttMs)),
      failures: rs.filter((r) => !r.ok).length,
    };
  });
}

/** "−3 % to +5 %": the range over duplicate counts of (median now ÷ median before − 1). */
function modelShift(reps: Rep[], beforeReps: Rep[]): string {
  const shifts = DUPS.map((d) => {
    const now = median(reps.filter((r) => r.dups === d).map((r) => r.productMs));
    const was = median(beforeReps.filter((r) => r.dups === d).map((r) => r.productMs));
    return Math.round((now / was - 1) * 100);
  });
  const pct = (x: number) => `${x > 0 ? '+' : x < 0 ? '−' : ''}${Math.abs(x)} %`;
  return `${pct(Math.min(...shifts))} to ${pct(Math.max(...shifts))}`;
}

async function report(reps: Rep[], cachedPairs: number, beforeReps?: Rep[]): Promise<void> {
  const rows: Array<Array<string | number>> = [];
  const detail: Array<Array<string | number>> = [];
  const stepRows: Array<Array<string | number>> = [];
  const perDups: Record<string, unknown>[] = [];
  const stepNames = ['claim', 'plan', 'generate', 'stage', 'verify', 'promote', 'prove', 'record', 'release'];
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
      `${fmtMs(bound.median)} (${boundRtts(d)} RTT)`,
      `${fmtRatio(vsBound.median)} (${fmtRatio(vsBound.min)}–${fmtRatio(vsBound.max)})`,
      `${fmtMs(baseline.median)} (${fmtMs(baseline.min)}–${fmtMs(baseline.max)})`,
      `${fmtRatio(vsBaseline.median)}`,
      vsBound.median <= 1.2 ? 'yes' : '**no**',
      ...(SCHEDULER
        ? []
        : [
            (() => {
              // the pass alone (advanceRun): in production it runs in the tick, apart from the API's answer
              const pass = summarize(rs.map((r) => (r.productMs - (r.steps.claim ?? 0)) / r.boundMs));
              return `${fmtRatio(pass.median)} (${fmtRatio(pass.min)}–${fmtRatio(pass.max)})`;
            })(),
          ]),
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
      `${(median(rs.map((r) => r.kpRequests)) / (d + 1)).toFixed(1)} (min ${(minRequests(d) / (d + 1)).toFixed(1)})`,
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
      boundRtts: boundRtts(d),
      implementationRtts: impl,
      kpRequestsPerMemberRotation: median(rs.map((r) => r.kpRequests)) / (d + 1),
      minRequestsPerMemberRotation: minRequests(d) / (d + 1),
      effectiveSequentialRtts: effRtts,
      failures,
    });
  }
  const md = [
    '# Benchmark 1 — one group rotation',
    '',
    `\`npx tsx bench/rotation.ts --dups ${DUPS.join(',')} --reps ${REPS} --latency ${LATENCY} --jitter ${JITTER} --emulator ${EMULATOR} --latency-mode ${LATENCY_MODE}${COMPARE ? ' --compare' : ''}${SCHEDULER ? ' --scheduler' : ''}\` — ${machineLine()}.${SCHEDULER ? " The scheduler's path: `startRotation`, as the tick starts a rotation — the claim reads every member (refusing what cannot rotate) while it escrows the new material and fetches the duplicates' import tokens, creates the run with its plan and escrow, and the pass that follows in the same call starts at stage. The operator's path is bench/results/rotation.md." : " The operator's path: the API's *rotate now* (`rotateNow`: read every member to refuse what cannot rotate with a clear error, claim, answer 202), then a pass over the run (`advanceRun`; in production the next tick's). Its reading is one round trip before the run exists, so this path is the chain + 1; `--scheduler` measures the tick's path (bench/results/rotation-scheduled.md)."}`,
    '',
    LATENCY_MODE === 'round-trip'
      ? `Every Key Protect region of the emulator answers each request ${LATENCY} ms + U[0, ${JITTER}] ms after it arrived (fault \`roundTripMs\`: handled at once, the emulator's own work inside that window),`
      : `Every Key Protect region of the emulator delays each request by ${LATENCY} ms + U[0, ${JITTER}] ms before handling it (fault \`latencyMs\`),`,
    EMULATOR === 'child'
      ? 'in a process of its own (bench/_lib/emulatorChild.ts; faults and the clock over its admin API).'
      : 'in the process of the code under test.',
    `One repetition = ${SCHEDULER ? '`startRotation`' : '`rotateNow` + `advanceRun`'} of a group (plan, generate +`,
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
        ...(SCHEDULER ? [] : ['the pass alone (advanceRun) ÷ bound']),
        'completed',
      ],
      rows,
    ),
    '',
    '## The latency model',
    '',
    'Real Key Protect does its work (the RSA-OAEP decrypt of a secure import, AES, JSON) on its own servers, inside',
    "the round trip. The model before ran the emulator in the bench's process and slept before handling a request, so",
    "the emulator's work (about 3 ms per secure import) queued on the event loop of the code under test, and requests",
    'whose delays ended together queued behind each other: a round trip was latency + jitter + queueing, which grew',
    'with the number of duplicates. `--emulator child --latency-mode round-trip` (the default) removes both artifacts;',
    '`--emulator in-process --latency-mode delay` is the model before.',
    '',
    ...(beforeReps
      ? [
          `Same code, same minutes, emulator in-process with delay-before-handling (the model before, \`--compare\`):`,
          '',
          mdTable(
            [
              'members',
              'this model: rotation (range)',
              'ratio to bound',
              'model before: rotation (range)',
              'ratio to bound',
              'RTT before',
            ],
            DUPS.map((d, i) => {
              const a = headline(reps)[i]!;
              const b = headline(beforeReps)[i]!;
              return [
                `1 + ${d}`,
                `${fmtMs(a.productMs.median)} (${fmtMs(a.productMs.min)}–${fmtMs(a.productMs.max)})`,
                `${fmtRatio(a.ratioToBound.median)} (${fmtRatio(a.ratioToBound.min)}–${fmtRatio(a.ratioToBound.max)})`,
                `${fmtMs(b.productMs.median)} (${fmtMs(b.productMs.min)}–${fmtMs(b.productMs.max)})`,
                `${fmtRatio(b.ratioToBound.median)} (${fmtRatio(b.ratioToBound.min)}–${fmtRatio(b.ratioToBound.max)})`,
                `${b.rttMs.toFixed(1)} ms`,
              ];
            }),
          ),
          '',
        ]
      : []),
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
        'KP requests per member-rotation (chain minimum)',
        'store calls',
      ],
      detail,
    ),
    '',
    'Median time per saga step (from the run document transitions):',
    '',
    mdTable(['members', ...stepNames], stepRows),
    '',
    `## The critical-path bound: ${BOUND_RTTS} dependent round trips (${boundRtts(1)} with one duplicate)`,
    '',
    mdTable(
      ['step', 'RTTs', 'why'],
      CRITICAL_PATH.map(([s, n, why]) => [s, n, why]),
    ),
    '',
    'Not counted, and why: the token leases, run saves and lineage append are store round trips (reported above as',
    '*store only*). RTT is the median of a single GET; a step that waits for the slowest of several parallel calls pays',
    `up to the jitter (${JITTER} ms) more, so a perfect implementation would measure slightly above 1.0×. Safety rules`,
    'kept by this chain: the escrow is persisted before any member sees the material (tokens carry none); a rotate is',
    're-sent only after listing the versions (and proving a new one by canary); one token per instance under its lease;',
    'the primary is rotated only after every duplicate is verified; every step is saved (group commit) before the next.',
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
    'Done (issue 16): the read-back after a rotate is a canary wrap (it names the answering version), and verify and',
    "   prove unwrap those canaries instead of wrapping again; import tokens are fetched ahead under their instance's",
    "   lease (the duplicates' with the plan or the escrow, the primary's while duplicates are staged and verified);",
    "   a first rotate goes on the plan's snapshot (a retry, a resumed run or any error lists the versions first); the",
    '   pass that escrows the material stages with it (no escrow unwrap; another pass unwraps); a run that plans in its',
    '   pass reads, escrows and posts tokens in one round trip. 14 → 9 RTTs for rotateNow, 8 when the run plans in its',
    '   pass (8 and 7 with one duplicate). Before (base 05f422e, same bench, same minutes, load ≈ 5–7): 1+1 1156 ms,',
    '   1+2 1129 ms, 1+4 1046 ms, 1+8 1077 ms = 2.6× / 2.3× / 2.2× / 2.4× of this minimum (effective 15.1–17.6 RTTs),',
    '   11–11.5 Key Protect requests per member-rotation.',
    '   Fleet check (`npx tsx bench/fleet.ts --groups 12 --budget-s 120`, same minutes): before 13.8 s = 1.09× of its rate',
    '   bound, 12 429s, 11.3–11.4 requests per group per instance; after 9.6 s = 1.02×, 3 429s, 8.2–8.7 (token leases',
    '   held ahead did not slow the fleet).',
    ...(beforeReps
      ? [
          `Latency model: in this run the emulator in its own process with round-trip latency moved the medians by ${modelShift(reps, beforeReps)}`,
          '   against the model before (in-process, delay before handling), about the spread of the repetitions on this',
          "   shared machine: the emulator's work and the queueing of delays are not what keeps the larger groups above the bound.",
        ]
      : []),
    'Done in the second round (issue 16, this session): store round trips off the critical path — the group lease',
    "   renewed once a quarter of its TTL has passed (not before every command); a member's token lease released while",
    '   its read-back is wrapped; the correlation ids of a stage or promote recorded by the save that leads to it; the',
    "   lineage head read during the prove step; record and release one save; the duplicates' token leases taken in",
    "   three store requests (`acquireMany`) instead of three each. And the scheduler's path at the chain's 8 round",
    "   trips: `startRotation` escrows the material and fetches the duplicates' tokens while its claim reads the",
    '   members, and creates the run with its plan and escrow (the tick used to read, claim, then escrow and POST the',
    "   tokens in the pass: 9). Store calls per rotation 31–45 → 19–26 (scheduler's path).",
    ...(SCHEDULER
      ? [
          'What remains above the bound (`--trace`, 1 + 8): store round trips on the critical path, about 40–50 ms (the',
          '   group read and the token leases before POST import_token, the claim, a save per step, the lineage append',
          '   and release); and every parallel step waiting for the slowest of its 8–16 calls, about 60–69 ms per step',
          "   against the median round trip's 57 (the jitter of the slowest call, ≈ 9 ms instead of the median's 5, plus",
          "   the client's own work per call).",
        ]
      : [
          "What remains above the bound on this path: the API's reading is a round trip of its own before the run exists",
          "   (rotateNow refuses what cannot rotate with a clear error, then answers 202); the run's pass, which in",
          '   production the next tick runs, is the chain of 8 (the column "the pass alone"). The tick\'s own rotations',
          '   take `startRotation` (bench/results/rotation-scheduled.md).',
        ]),
    '',
  ].join('\n');
  await writeResult(RESULT_NAME, md, {
    scenario: RESULT_NAME,
    params: {
      dups: DUPS,
      reps: REPS,
      latencyMs: LATENCY,
      jitterMs: JITTER,
      emulator: EMULATOR,
      latencyMode: LATENCY_MODE,
      path: SCHEDULER ? 'scheduler (startRotation)' : 'operator (rotateNow + advanceRun)',
    },
    machine: machineLine(),
    boundRtts: BOUND_RTTS,
    criticalPath: CRITICAL_PATH.map(([step, rtts, why]) => ({ step, rtts, why })),
    perDups,
    reps,
    ...(beforeReps
      ? {
          modelBefore: {
            emulator: 'in-process',
            latencyMode: 'delay',
            perDups: headline(beforeReps),
            reps: beforeReps,
          },
        }
      : {}),
  });
}

await main();
