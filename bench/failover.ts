/**
 * Benchmark — the failover client during an outage of the primary region.
 *
 * Three regions of the Key Protect emulator, each answering after 50 ± 10 ms (one round trip). A ciphertext set is
 * wrapped at the primary while it is up; then the primary region goes down in three ways (connections refused,
 * 503 answers, a hang with no answer) and each client unwraps the whole set, one call after another:
 * - naive: the primary only (what an application without DR does), 1 s timeout;
 * - sequential retry: the primary, then each duplicate in turn, 1 s timeout per member, no memory between calls;
 * - GroupKeyring (`lockstep/client`): circuit breakers, hedging after 100 ms, 1 s attempt timeout.
 * Added latency = a call's latency during the outage − the median latency of the same client with every region up.
 * Target (issue 15): 100 % success, and GroupKeyring's added p99 ≤ one round trip + the hedge delay.
 *
 * Usage: npx tsx bench/failover.ts [--n 60]
 */
import KeyProtectV2 from '@ibm-cloud/ibm-key-protect/ibm-key-protect-api/v2.js';
import { GroupKeyring, type MemberEndpoint } from '../src/client/index.js';
import type { FaultSpec } from '../src/local/kp-emulator/index.js';
import { startEmulatorStack } from '../src/local/kp-emulator/index.js';
import { authenticatorFor, createTestGroup } from '../test/support/groupKeys.js';
import { fmtMs, gitLine, machineLine, mdTable, median, percentile, writeResult } from './_lib/common.js';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const N = arg('n', 100);
const RTT_MS = 50;
const JITTER_MS = 10;
const HEDGE_MS = 100;
const TIMEOUT_MS = 1_000;
/** Unwraps in flight at once for the stateless baselines (naive, sequential retry) during an outage. */
const STATELESS_PARALLEL = 10;
const REGIONS = ['us-south', 'us-east', 'eu-de'];
const NORMAL: FaultSpec = { latencyMs: RTT_MS - JITTER_MS / 2, latencyJitterMs: JITTER_MS };
const OUTAGES: Record<string, FaultSpec> = {
  'refused (ECONNREFUSED)': { outage: 'refuse' },
  '503 answers': { outage: '503' },
  'hang (no answer)': { latencyMs: 600_000 },
};

type Unwrap = (ciphertext: string) => Promise<string>;

async function main() {
  const stack = await startEmulatorStack({ regions: REGIONS });
  try {
    const group = await createTestGroup(stack, REGIONS, 'bench-failover');
    const auth = authenticatorFor(stack, 'auditor');
    const sdk = (m: MemberEndpoint) => {
      const s = new KeyProtectV2({ authenticator: auth, serviceUrl: m.url, timeout: TIMEOUT_MS });
      s.disableRetries();
      return s;
    };
    const sdkUnwrap = (m: MemberEndpoint, ciphertext: string) =>
      sdk(m)
        .unwrapKey({
          id: m.keyId,
          bluemixInstance: m.instanceId,
          keyActionUnwrapBody: Buffer.from(JSON.stringify({ ciphertext })),
        })
        .then((r) => (r.result as { plaintext: string }).plaintext);
    const primary = group.members[0]!;
    const writer = new GroupKeyring({ members: group.members, authenticator: auth });
    const set: { ciphertext: string; plaintext: string }[] = [];
    for (let i = 0; i < N; i++) {
      const w = await writer.wrap();
      set.push({ ciphertext: w.ciphertext, plaintext: w.plaintext.toString('base64') });
    }

    const clients: Record<string, () => Unwrap> = {
      naive: () => (c) => sdkUnwrap(primary, c),
      'sequential retry': () => async (c) => {
        let last: unknown;
        for (const m of group.members) {
          try {
            return await sdkUnwrap(m, c);
          } catch (err) {
            last = err;
          }
        }
        throw last;
      },
      GroupKeyring: () => {
        const ring = new GroupKeyring({
          members: group.members,
          authenticator: auth,
          hedgeDelayMs: HEDGE_MS,
          attemptTimeoutMs: TIMEOUT_MS,
          deadlineMs: 5_000,
        });
        return async (c) => (await ring.unwrap(c)).plaintext.toString('base64');
      },
    };

    /**
     * Every ciphertext of the set unwrapped once, each timed on its own; `parallel` > 1 only for the stateless
     * baselines (their unwraps do not depend on each other: waiting out 1 s timeouts one by one only costs wall time).
     */
    async function measure(unwrap: Unwrap, parallel = 1) {
      const latencies: number[] = [];
      let ok = 0;
      let next = 0;
      const lane = async () => {
        while (next < set.length) {
          const { ciphertext, plaintext } = set[next++]!;
          const t0 = performance.now();
          try {
            if ((await unwrap(ciphertext)) === plaintext) ok += 1;
          } catch {
            // counted as a failure
          }
          latencies.push(performance.now() - t0);
        }
      };
      await Promise.all(Array.from({ length: parallel }, lane));
      return { ok, latencies };
    }

    for (const r of REGIONS) stack.kp.setFaults({ region: r }, NORMAL);
    const baseline: Record<string, number> = {};
    const roundTripP99: Record<string, number> = {};
    for (const [name, make] of Object.entries(clients)) {
      const unwrap = make();
      await unwrap(set[0]!.ciphertext); // warm the IAM token and connections
      const healthy = (await measure(unwrap)).latencies;
      baseline[name] = median(healthy);
      roundTripP99[name] = percentile(healthy, 99);
    }

    const rows: Array<Array<string | number>> = [];
    const json: Record<string, unknown>[] = [];
    for (const [outage, spec] of Object.entries(OUTAGES)) {
      for (const [name, make] of Object.entries(clients)) {
        const unwrap = make(); // a fresh client per outage: its breakers start closed
        await unwrap(set[0]!.ciphertext);
        stack.kp.setFaults({ region: 'us-south' }, spec);
        // GroupKeyring keeps state across unwraps (its breakers): one at a time, as an application's calls come
        const { ok, latencies } = await measure(unwrap, name === 'GroupKeyring' ? 1 : STATELESS_PARALLEL);
        stack.kp.setFaults({ region: 'us-south' }, NORMAL);
        const added = latencies.map((l) => l - baseline[name]!);
        const p50 = percentile(added, 50);
        const p99 = percentile(added, 99);
        // one round trip (the emulator's, at most RTT + jitter/2) + the hedge delay
        const target = name === 'GroupKeyring' ? RTT_MS + JITTER_MS / 2 + HEDGE_MS : undefined;
        const rate = (100 * ok) / set.length;
        rows.push([
          outage,
          name,
          `${rate.toFixed(rate === 100 || rate === 0 ? 0 : 1)} %`,
          fmtMs(percentile(latencies, 50)),
          fmtMs(percentile(latencies, 99)),
          fmtMs(Math.max(0, p50)),
          fmtMs(Math.max(0, p99)),
          target === undefined ? '—' : `${p99 <= target && ok === set.length ? 'met' : '**missed**'} (≤ ${target} ms)`,
        ]);
        json.push({
          outage,
          client: name,
          calls: set.length,
          ok,
          p50Ms: percentile(latencies, 50),
          p99Ms: percentile(latencies, 99),
          addedP50Ms: p50,
          addedP99Ms: p99,
          baselineMs: baseline[name],
          targetAddedP99Ms: target ?? null,
        });
        console.error(`${outage} · ${name}: ${ok}/${set.length}`);
      }
    }

    const md = [
      '# Benchmark — failover client during a primary outage',
      '',
      `\`npx tsx bench/failover.ts --n ${N}\` — ${gitLine()}, ${machineLine()}.`,
      '',
      `Three emulator regions answering after ${RTT_MS} ± ${JITTER_MS / 2} ms (one round trip); ${N} ciphertexts wrapped at the`,
      'primary while it was up, then unwrapped by each client while the primary region is down: GroupKeyring one after',
      `another (its breakers carry state from call to call), the stateless naive and sequential clients ${STATELESS_PARALLEL} at a time`,
      '(each unwrap timed on its own; only the wall time of the benchmark changes).',
      'Added latency = latency during the outage − the same client’s median with every region up',
      `(${Object.entries(baseline)
        .map(([k, v]) => `${k} ${fmtMs(v)}`)
        .join(', ')}). GroupKeyring: breakers (3 failures, 5 s cooldown), hedge after ${HEDGE_MS} ms,`,
      `${TIMEOUT_MS} ms attempt timeout; naive and sequential retry: ${TIMEOUT_MS} ms timeout per call. Target: 100 % success and`,
      `GroupKeyring's added p99 ≤ one round trip (the emulator's: at most ${RTT_MS + JITTER_MS / 2} ms) + the hedge delay. For scale, the`,
      `healthy p99 in this run on this shared machine: ${Object.entries(roundTripP99)
        .map(([k, v]) => `${k} ${fmtMs(v)}`)
        .join(', ')}.`,
      '',
      mdTable(['primary outage', 'client', 'unwrap success', 'p50', 'p99', 'added p50', 'added p99', 'target'], rows),
      '',
      'Reading it: the naive client loses every unwrap. Sequential retry recovers them all but pays the full timeout',
      'on every call while the primary hangs (it keeps no memory between calls). GroupKeyring stops asking a refusing',
      'or failing primary after three failures (breaker); while the primary hangs, the first calls answer from a',
      'duplicate after the hedge delay, and a primary outrun by the hedge counts as a failure, so after three calls',
      'its breaker opens and calls go straight to a duplicate (a half-open probe every 5 s pays the hedge delay once).',
    ].join('\n');
    await writeResult('failover', md, { n: N, rttMs: RTT_MS, hedgeMs: HEDGE_MS, baseline, results: json });
  } finally {
    await stack.close();
  }
}

await main();
// the emulator still holds the hung requests' timers: do not wait for them
process.exit(0);
