/**
 * Runs a fast-check property over bad input and counts every case that breaks the invariant, instead of stopping at
 * the first: the property records violations (with the case, shortened) and never fails, so `runs` is the number of
 * cases tried and `violations` the number that broke the rule. The seed is fixed per test run: `LOCKSTEP_FUZZ_SEED`
 * when set (to replay a failure), else a fresh one, always printed with the result and in every violation message.
 */
import fc from 'fast-check';
import { recordScenario, type ScenarioResult, scale } from './report.js';

/** Cases per property by level: bounded (npm test) ~150, full 2000, soak 20000. */
export function fuzzRuns(bounded = 150): number {
  return scale({ bounded, full: 2_000, soak: 20_000 });
}

/** The seed of this test run (LOCKSTEP_FUZZ_SEED replays one). */
export function fuzzSeed(): number {
  const fixed = Number(process.env.LOCKSTEP_FUZZ_SEED);
  return Number.isSafeInteger(fixed) ? fixed : (Date.now() ^ (process.pid << 8)) | 0;
}

/** A broken invariant: `check` returns descriptions of what is wrong (empty when the case is fine). */
export type CaseVerdict = string[];

export interface FuzzTally {
  /** Cases tried (all properties of a target). */
  runs: number;
  violations: number;
  /** First few violation descriptions, each with the seed to replay it. */
  examples: string[];
  seed: number;
}

/** Accumulates several properties of one target into one report row. */
export function createTally(seed = fuzzSeed()): FuzzTally {
  return { runs: 0, violations: 0, examples: [], seed };
}

/** Shortens a case for a message: JSON, at most `max` characters, control characters escaped. */
export function describeCase(value: unknown, max = 300): string {
  let text: string;
  try {
    text = JSON.stringify(value, (_k, v) =>
      Buffer.isBuffer(v)
        ? `<${v.length} bytes: ${v.subarray(0, 60).toString('utf8')}>`
        : typeof v === 'string' && v.length > 200
          ? `${v.slice(0, 120)}…(${v.length} chars)`
          : v,
    );
  } catch {
    text = String(value);
  }
  text = text ?? String(value);
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

/**
 * Runs `check` over `numRuns` cases of `arb` (async), adding to `tally`. `check` returns the violations of one case.
 * `examples` are cases always tried first (known counterexamples: regression tests of fixed bugs).
 */
export async function fuzz<T>(
  tally: FuzzTally,
  name: string,
  arb: fc.Arbitrary<T>,
  check: (value: T) => Promise<CaseVerdict>,
  opts: { numRuns?: number; examples?: T[] } = {},
): Promise<void> {
  let index = 0;
  const details = await fc.check(
    fc.asyncProperty(arb, async (value) => {
      const at = index++;
      let problems: CaseVerdict;
      try {
        problems = await check(value);
      } catch (err) {
        problems = [`the check itself threw: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`];
      }
      if (problems.length > 0) {
        tally.violations += 1;
        if (tally.examples.length < 8) {
          tally.examples.push(
            `[${name}] seed=${tally.seed} case #${at}: ${problems.join('; ').slice(0, 400)} — input ${describeCase(value)}`,
          );
        }
      }
      return true;
    }),
    {
      seed: tally.seed,
      numRuns: opts.numRuns ?? fuzzRuns(),
      ...(opts.examples?.length ? { examples: opts.examples.map((e) => [e] as [T]) } : {}),
    },
  );
  if (details.failed) {
    // the property only fails when fast-check itself could not run it
    tally.violations += 1;
    tally.examples.push(`[${name}] seed=${tally.seed}: fast-check failed: ${String(details.errorInstance)}`);
  }
  tally.runs += index;
}

/**
 * Records a fuzz target's row (area `fuzz`): its tally plus the cases that escaped as unhandled errors (`crashes`,
 * each a violation; the first three become examples).
 */
export function recordFuzzRow(tally: FuzzTally, crashes: string[], scenario: string, notes: string): ScenarioResult {
  if (crashes.length) {
    tally.violations += crashes.length;
    tally.examples.push(...crashes.slice(0, 3).map((c) => `unhandled: ${c}`));
  }
  return recordScenario({
    scenario,
    area: 'fuzz',
    runs: tally.runs,
    violations: tally.violations,
    notes: `${notes}; seed ${tally.seed}`,
    examples: tally.examples,
  });
}
