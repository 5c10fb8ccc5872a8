/**
 * Reliability scenarios report here. Every scenario test (test/reliability/*.test.ts) runs at a level chosen by
 * `LOCKSTEP_RELIABILITY`: `bounded` (default; what `npm test` runs — small, quick), `full` (`npm run reliability`)
 * or `soak` (`npm run soak` — long). Each scenario calls `recordScenario` once with what it counted; the test
 * asserts `violations === 0` itself. When `LOCKSTEP_RELIABILITY_OUT` names a directory, each result is also
 * written there as one JSON file, which bench/reliability.ts turns into the report table.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export type ReliabilityLevel = 'bounded' | 'full' | 'soak';

export function reliabilityLevel(): ReliabilityLevel {
  const v = process.env.LOCKSTEP_RELIABILITY;
  return v === 'full' || v === 'soak' ? v : 'bounded';
}

/** Picks the parameter for the current level. */
export function scale<T>(byLevel: { bounded: T; full: T; soak: T }): T {
  return byLevel[reliabilityLevel()];
}

export interface ScenarioResult {
  /** Row name in the table, e.g. "crash matrix (2 duplicates)". */
  scenario: string;
  /** Group of the row, e.g. "crash", "dr-window", "faults", "concurrency", "fuzz", "secrets", "access". */
  area: string;
  /** How many runs / cases / generations / requests were exercised. */
  runs: number;
  /** Invariant violations found (must be 0; the test asserts it). */
  violations: number;
  /** Time to converge, ms (simulated or wall, say which in `notes`), when the scenario has one. */
  convergeMs?: { median: number; max: number };
  /** One line: what was checked, and any figure worth reporting (e.g. naive rotation failures). */
  notes: string;
  /** Violation descriptions (first few), for the report and the assertion message. */
  examples?: string[];
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Records a scenario's result: one line on stderr always, a JSON file when the report directory is set. */
export function recordScenario(r: ScenarioResult): ScenarioResult {
  const conv = r.convergeMs
    ? `, converge median ${Math.round(r.convergeMs.median)} ms / max ${Math.round(r.convergeMs.max)} ms`
    : '';
  process.stderr.write(`[reliability] ${r.scenario}: ${r.runs} runs, ${r.violations} violations${conv} — ${r.notes}\n`);
  const dir = process.env.LOCKSTEP_RELIABILITY_OUT;
  if (dir) {
    mkdirSync(dir, { recursive: true });
    const name = r.scenario.replace(/[^a-z0-9]+/gi, '-').toLowerCase();
    writeFileSync(join(dir, `${r.area}--${name}.json`), JSON.stringify({ ...r, level: reliabilityLevel() }, null, 2));
  }
  return r;
}
