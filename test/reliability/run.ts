/**
 * `npm run reliability` (level `full`) and `npm run soak` (level `soak`): runs the reliability scenarios of
 * test/reliability at that level, prints the table (scenario, runs, invariant violations, time to converge) and
 * writes it to bench/results/reliability.md (soak: reliability-soak.md). `npm test` runs the same scenarios at
 * the `bounded` level and does not write the report.
 * Usage: npm run reliability [-- <vitest file filter>...]   |   npm run soak
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ScenarioResult } from './_lib/report.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
const soak = process.argv.includes('--soak');
const filters = process.argv.slice(2).filter((a) => a !== '--soak');
const level = soak ? 'soak' : 'full';
const out = mkdtempSync(join(tmpdir(), 'lockstep-reliability-'));
const started = Date.now();

console.log(`lockstep reliability — level ${level}; scenarios in test/reliability`);
const r = spawnSync(
  process.execPath,
  [join(root, 'node_modules/vitest/vitest.mjs'), 'run', ...(filters.length ? filters : ['test/reliability'])],
  {
    cwd: root,
    stdio: 'inherit',
    env: { ...process.env, LOCKSTEP_RELIABILITY: level, LOCKSTEP_RELIABILITY_OUT: out },
  },
);

const rows: Array<ScenarioResult & { level: string }> = readdirSync(out)
  .filter((f) => f.endsWith('.json'))
  .sort()
  .map((f) => JSON.parse(readFileSync(join(out, f), 'utf8')));

const ms = (n: number) => (n >= 10_000 ? `${(n / 1000).toFixed(1)} s` : `${Math.round(n)} ms`);
const lines = [
  `# Reliability report (${level})`,
  '',
  `Run ${new Date().toISOString()} on ${process.platform}/${process.arch}, Node ${process.version}; ` +
    `${rows.length} scenarios in ${((Date.now() - started) / 1000).toFixed(0)} s; vitest exit ${r.status}.`,
  '',
  '| area | scenario | runs | invariant violations | time to converge (median / max) | notes |',
  '|---|---|---:|---:|---|---|',
  ...rows.map(
    (x) =>
      `| ${x.area} | ${x.scenario} | ${x.runs} | ${x.violations} | ${x.convergeMs ? `${ms(x.convergeMs.median)} / ${ms(x.convergeMs.max)}` : '—'} | ${x.notes.replace(/\|/g, '\\|')} |`,
  ),
  '',
  `Total: ${rows.reduce((a, x) => a + x.runs, 0)} runs, ${rows.reduce((a, x) => a + x.violations, 0)} violations.`,
];
const violations = rows.filter((x) => x.violations > 0);
if (violations.length) {
  lines.push('', '## Violations', '');
  for (const v of violations) lines.push(`- ${v.scenario}: ${(v.examples ?? []).join('; ') || 'see test output'}`);
}
const text = `${lines.join('\n')}\n`;
const file = join(root, 'bench/results', soak ? 'reliability-soak.md' : 'reliability.md');
if (filters.length === 0) writeFileSync(file, text);
console.log(`\n${text}`);
if (filters.length === 0) console.log(`written to ${file}`);
else console.log('(a filtered run: the report file was not written)');
process.exit(r.status === 0 && violations.length === 0 ? 0 : 1);
