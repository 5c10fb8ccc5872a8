/**
 * Benchmark — the test loop: `npm test` (vitest run, the whole suite) from spawn to exit, against the 5-minute target
 * on this machine, with the files that dominate it.
 *
 *   npx tsx bench/test-loop.ts [--runs 1]
 *
 * Each run spawns the README's test command (`npm test`, with a JSON report written to a temporary file) and times
 * it as a shell would; the report gives the counts and each file's own duration (files run in parallel, so their sum
 * is larger than the wall time). Writes bench/results/test-loop.md and .json.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { fmtMs, machineLine, mdTable, summarize, writeResult } from './_lib/common.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '1' } } });
const RUNS = Number(values.runs);
const TARGET_MS = 5 * 60_000;
const root = join(import.meta.dirname, '..');

interface VitestJson {
  numTotalTests: number;
  numPassedTests: number;
  numFailedTests: number;
  numPendingTests: number;
  testResults: Array<{ name: string; startTime: number; endTime: number; assertionResults: unknown[] }>;
}

interface Run {
  wallMs: number;
  exitCode: number | null;
  report: VitestJson;
}

async function once(): Promise<Run> {
  const dir = await mkdtemp(join(tmpdir(), 'lockstep-test-loop-'));
  const out = join(dir, 'vitest.json');
  try {
    const started = performance.now();
    const exitCode = await new Promise<number | null>((resolve, reject) => {
      const child = spawn('npm', ['test', '--', '--reporter=dot', '--reporter=json', `--outputFile.json=${out}`], {
        cwd: root,
        stdio: ['ignore', 'ignore', 'inherit'],
        env: { ...process.env, CI: 'true' },
      });
      child.on('error', reject);
      child.on('exit', (code) => resolve(code));
    });
    const wallMs = performance.now() - started;
    const report = JSON.parse(await readFile(out, 'utf8')) as VitestJson;
    return { wallMs, exitCode, report };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const runs: Run[] = [];
  for (let i = 1; i <= RUNS; i++) {
    console.error(`npm test, run ${i} of ${RUNS}…`);
    const r = await once();
    console.error(
      `  ${fmtMs(r.wallMs)}, exit ${r.exitCode}, ${r.report.numPassedTests} passed, ${r.report.numFailedTests} failed`,
    );
    runs.push(r);
  }
  const wall = summarize(runs.map((r) => r.wallMs));
  const last = runs[runs.length - 1]!;
  const files = last.report.testResults
    .map((f) => ({ file: relative(root, f.name), ms: f.endTime - f.startTime, tests: f.assertionResults.length }))
    .sort((a, b) => b.ms - a.ms);
  const fileSum = files.reduce((a, f) => a + f.ms, 0);
  const md = [
    '# Benchmark — the test loop (`npm test`)',
    '',
    `\`npx tsx bench/test-loop.ts --runs ${RUNS}\` — ${machineLine()}.`,
    '',
    "The README's test command from spawn to exit (vitest, every file, `CI=true`), as a shell sees it. The load average",
    "above is the machine's when the report was written: the suite itself keeps both cores busy.",
    '',
    mdTable(
      ['measure', 'median (range)', 'target', 'ratio to target', 'meets target'],
      [
        [
          '`npm test`, wall',
          `${fmtMs(wall.median)} (${fmtMs(wall.min)}–${fmtMs(wall.max)})`,
          '≤ 5 min on 2 cores',
          `${(wall.median / TARGET_MS).toFixed(2)}×`,
          wall.max <= TARGET_MS ? 'yes' : '**no**',
        ],
      ],
    ),
    '',
    mdTable(
      ['files', 'tests', 'passed', 'failed', 'skipped', 'sum of file durations (parallel)'],
      [
        [
          files.length,
          last.report.numTotalTests,
          last.report.numPassedTests,
          last.report.numFailedTests,
          last.report.numPendingTests,
          fmtMs(fileSum),
        ],
      ],
    ),
    '',
    'The ten files that take longest (their own duration; they overlap with others):',
    '',
    mdTable(
      ['file', 'tests', 'duration', 'share of the sum'],
      files
        .slice(0, 10)
        .map((f) => [`\`${f.file}\``, f.tests, fmtMs(f.ms), `${((100 * f.ms) / fileSum).toFixed(0)} %`]),
    ),
  ].join('\n');
  await writeResult('test-loop', md, {
    runs: runs.map((r) => ({
      wallMs: r.wallMs,
      exitCode: r.exitCode,
      passed: r.report.numPassedTests,
      failed: r.report.numFailedTests,
    })),
    wallMs: wall,
    targetMs: TARGET_MS,
    files: files.slice(0, 20),
  });
  if (runs.some((r) => r.exitCode !== 0)) process.exitCode = 1;
}

await main();
