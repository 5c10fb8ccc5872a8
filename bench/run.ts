/**
 * `npm run bench`: runs every benchmark scenario in bench/ (each a standalone script that prints its table and
 * writes it to bench/results/), one after another so they do not compete for the two cores.
 * Usage: npm run bench [-- <name-filter>]
 */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const filter = process.argv[2];
const scenarios = readdirSync(here)
  .filter((f) => f.endsWith('.ts') && f !== 'run.ts' && !f.startsWith('_'))
  .filter((f) => !filter || f.includes(filter))
  .sort();

if (scenarios.length === 0) {
  console.error(filter ? `No benchmark matches "${filter}".` : 'No benchmarks found in bench/.');
  process.exit(2);
}

const results: { name: string; status: number | null; seconds: number }[] = [];
for (const file of scenarios) {
  console.log(`\n=== ${file}`);
  const started = Date.now();
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(here, file)], { stdio: 'inherit' });
  results.push({ name: file, status: r.status, seconds: (Date.now() - started) / 1000 });
}
console.log('\n=== summary');
for (const r of results) console.log(`${r.status === 0 ? 'ok  ' : 'FAIL'} ${r.name} (${r.seconds.toFixed(1)} s)`);
process.exit(results.every((r) => r.status === 0) ? 0 : 1);
