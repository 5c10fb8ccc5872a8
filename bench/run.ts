/**
 * `npm run bench`: runs every benchmark scenario in bench/ (each a standalone script that prints its table and
 * writes it to bench/results/), one after another so they do not compete for the two cores; diagnostics without a
 * target (ON_REQUEST) only when named.
 * Usage: npm run bench [-- <name-filter>]
 */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const filter = process.argv[2];
/** Diagnostics without a target, run only when named (`npm run bench -- store-history`): the store queries alone. */
const ON_REQUEST = new Set(['store-history.ts']);
const scenarios = readdirSync(here)
  .filter((f) => f.endsWith('.ts') && f !== 'run.ts' && !f.startsWith('_'))
  .filter((f) => (filter ? f.includes(filter) : !ON_REQUEST.has(f)))
  .sort();

if (scenarios.length === 0) {
  console.error(filter ? `No benchmark matches "${filter}".` : 'No benchmarks found in bench/.');
  process.exit(2);
}

/** Scenarios run more than once, one argument list per run (each writes its own result file). */
const VARIANTS: Record<string, string[][]> = {
  // the operator's path (rotation.md) and the scheduler's (rotation-scheduled.md)
  'rotation.ts': [[], ['--scheduler']],
};

const results: { name: string; status: number | null; seconds: number }[] = [];
const benchStarted = Date.now();
for (const file of scenarios) {
  for (const args of VARIANTS[file] ?? [[]]) {
    const name = [file, ...args].join(' ');
    console.log(`\n=== ${name}`);
    const started = Date.now();
    const r = spawnSync(process.execPath, ['--import', 'tsx', join(here, file), ...args], { stdio: 'inherit' });
    results.push({ name, status: r.status, seconds: (Date.now() - started) / 1000 });
  }
}
console.log('\n=== summary');
for (const r of results) console.log(`${r.status === 0 ? 'ok  ' : 'FAIL'} ${r.name} (${r.seconds.toFixed(1)} s)`);
const total = (Date.now() - benchStarted) / 1000;
console.log(`total ${Math.floor(total / 60)} min ${Math.round(total % 60)} s (target: under 10 min)`);
process.exit(results.every((r) => r.status === 0) ? 0 : 1);
