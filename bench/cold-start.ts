/**
 * Benchmark 4 — cold start and bundle size of each function.
 *
 *   npx tsx bench/cold-start.ts [--runs 5]
 *
 * Bundles functions/{rotate,events,api}.ts with the options of the serverless plugin (esbuild: cjs, node20,
 * minified, everything inlined), attributes the bytes of each bundle to its npm packages and first-party modules
 * (esbuild metafile), then starts a fresh `node` process per run that requires the bundle and answers one
 * invocation (Code Engine-shaped params) against the local stack (IAM, Key Protect emulator, embedded store).
 * Node's own start-up (`node -e 0`) is measured in the same run. Writes bench/results/cold-start.md and .json.
 *
 * Then the CLI: builds it as `npm ci` does (scripts/build-cli.mjs → dist/cli), starts the local stack (`lockstep
 * dev`'s stack, in this process) and times `lockstep --help`, `lockstep status` and `lockstep history demo` (spawn →
 * exit) beside `node -e 0`, and `--help` through tsx (how every command started before the build) for comparison.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { build, type Metafile } from 'esbuild';
import { BUNDLE_OPTIONS } from '../plugins/ibm-code-engine/build.js';
// @ts-expect-error plain JS build script without types
import { buildCli } from '../scripts/build-cli.mjs';
import { toCeParams, toCronParams } from '../src/codeengine/index.js';
import { startDevStack } from '../src/local/dev/index.js';
import { startEmulatorStack } from '../src/local/kp-emulator/index.js';
import { createCloudantStores } from '../src/store/index.js';
import {
  benchDir,
  fmtKb,
  fmtMs,
  fmtRatio,
  machineLine,
  mdTable,
  median,
  summarize,
  writeResult,
} from './_lib/common.js';
import { startCouchChild } from './_lib/lineageData.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '5' } } });
const RUNS = Number(values.runs);
const TARGET_MS = 300;
const FUNCTIONS = ['rotate', 'events', 'api'] as const;
const root = join(benchDir, '..');

function contributor(input: string): string {
  const nm = input.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = input.slice(nm + 'node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  const parts = input.split('/');
  return parts[0] === 'src' ? parts.slice(0, 2).join('/') : parts[0]!;
}

function attribute(meta: Metafile): Map<string, number> {
  const sizes = new Map<string, number>();
  for (const out of Object.values(meta.outputs)) {
    for (const [input, info] of Object.entries(out.inputs)) {
      const key = contributor(input);
      sizes.set(key, (sizes.get(key) ?? 0) + info.bytesInOutput);
    }
  }
  return sizes;
}

/** Spawns `node args…`; resolves the wall time until its first stdout line, and that line parsed. */
function timeChild(args: string[], env: NodeJS.ProcessEnv): Promise<{ wallMs: number; out: Record<string, unknown> }> {
  return new Promise((ok, fail) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let done = false;
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0 && !done) {
        done = true;
        const wallMs = performance.now() - t0;
        try {
          ok({ wallMs, out: JSON.parse(out.slice(0, nl)) });
        } catch {
          ok({ wallMs, out: { ok: false, error: out.slice(0, 300) } });
        }
      }
    });
    child.stderr.on('data', (b: Buffer) => {
      err += b.toString();
    });
    child.once('exit', (code) => {
      if (done) return;
      const wallMs = performance.now() - t0;
      if (args[0] === '-e') ok({ wallMs, out: { ok: code === 0 } });
      else fail(new Error(`child exited ${code} without answering: ${err.slice(-500)}`));
    });
  });
}

/** Spawns `node args…` and resolves the wall time until it exits (it must exit 0). */
function timeExit(args: string[], cwd: string): Promise<number> {
  return new Promise((ok, fail) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, args, {
      cwd,
      env: { PATH: process.env.PATH, NO_COLOR: '1' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (b: Buffer) => {
      err += b.toString();
    });
    child.once('exit', (code) => {
      const ms = performance.now() - t0;
      if (code === 0) ok(ms);
      else fail(new Error(`node ${args.join(' ')} exited ${code}: ${err.slice(-500)}`));
    });
  });
}

const CLI_TARGETS: Record<string, { ms: number; nodeRatio?: number }> = {
  '--help': { ms: 300, nodeRatio: 3 },
  status: { ms: 400 },
  'history demo': { ms: 400 },
};

/** The CLI rows: built CLI against the local stack, beside `node -e 0`; `--help` through tsx as the before. */
async function cliStart(): Promise<{ md: string; json: unknown }> {
  const work = await mkdtemp(join(tmpdir(), 'lockstep-cold-cli-'));
  await buildCli();
  const devFile = join(work, 'dev.json');
  const stack = await startDevStack({
    dataDir: join(work, 'data'),
    fresh: true,
    devFile,
    portBase: 0,
    rotationMinIntervalMs: 120_000,
    demo: true,
    demoEveryMs: 3_600_000,
    tickMs: 600_000,
    print: () => undefined,
  });
  const bin = join(root, 'bin', 'lockstep.js');
  const commands: Record<string, string[]> = {
    'node -e 0': ['-e', '0'],
    '--help': [bin, '--help'],
    status: [bin, '--dev-file', devFile, 'status'],
    'history demo': [bin, '--dev-file', devFile, 'history', 'demo'],
    '--help through tsx (before)': ['--import', 'tsx', join(root, 'src', 'cli', 'main.ts'), '--help'],
  };
  const times = new Map<string, number[]>(Object.keys(commands).map((k) => [k, []]));
  try {
    for (let r = 0; r < RUNS; r++) {
      for (const [name, args] of Object.entries(commands)) times.get(name)!.push(await timeExit(args, root));
    }
  } finally {
    await stack.close();
    await rm(work, { recursive: true, force: true });
  }
  const nodeMs = median(times.get('node -e 0')!);
  const rows = [...times.entries()].map(([name, xs]) => {
    const w = summarize(xs);
    const target = CLI_TARGETS[name];
    const ratioNode = w.median / nodeMs;
    const meets =
      target === undefined
        ? '—'
        : w.median <= target.ms && (target.nodeRatio === undefined || ratioNode <= target.nodeRatio)
          ? 'yes'
          : '**no**';
    return [
      name === 'node -e 0' ? name : `lockstep ${name}`,
      `${fmtMs(w.median)} (${fmtMs(w.min)}–${fmtMs(w.max)}, spread ${(w.spread * 100).toFixed(0)}%)`,
      fmtRatio(ratioNode),
      target ? `≤ ${target.ms} ms${target.nodeRatio ? ` and ≤ ${target.nodeRatio}× node -e 0` : ''}` : '—',
      target ? fmtRatio(w.median / target.ms) : '—',
      meets,
    ];
  });
  const md = [
    '## The CLI: start to exit',
    '',
    'The CLI as `npm ci` builds it (`prepare` → scripts/build-cli.mjs → dist/cli: ESM, one chunk per command, npm',
    'packages external; `bin/lockstep.js` loads it). `status` and `history demo` run against the local stack (the',
    "`lockstep dev` stack in the benchmark's process, demo group with one generation): IAM token + API requests.",
    'Wall time from spawn to exit, as a shell sees it; `node -e 0` in the same run. The last row is how every command',
    'started before (the sources compiled through tsx at each start).',
    '',
    mdTable(['command', 'wall, median (range, spread)', '÷ node -e 0', 'target', '÷ target', 'meets target'], rows),
  ].join('\n');
  return { md, json: Object.fromEntries(times) };
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'lockstep-cold-'));
  const couch = await startCouchChild();
  const stack = await startEmulatorStack({ regions: ['us-south', 'us-east', 'eu-de'] });
  const bundles: Array<{ fn: string; bytes: number; file: string; sizes: Map<string, number> }> = [];
  const runs = new Map<string, Array<{ wallMs: number; requireMs: number; invokeMs: number; status: unknown }>>();
  const nodeStart: number[] = [];
  try {
    for (const fn of FUNCTIONS) {
      const outfile = join(work, fn, 'main.js');
      const result = await build({
        ...BUNDLE_OPTIONS,
        plugins: [...BUNDLE_OPTIONS.plugins],
        external: [...BUNDLE_OPTIONS.external],
        entryPoints: [join(root, 'functions', `${fn}.ts`)],
        outfile,
      });
      const bytes = Object.values(result.metafile.outputs).reduce((a, o) => a + o.bytes, 0);
      bundles.push({ fn, bytes, file: outfile, sizes: attribute(result.metafile) });
    }

    // The databases exist before the first invocation (set up at deploy time, not on the cold path).
    await (await createCloudantStores({ ...couch.storeOptions, dbPrefix: 'cold-' })).ensureSetup();
    const auditor = stack.iam.identities.find((i) => i.name === 'auditor')!;
    const eventsToken = 'bench-events-token-0123456789abcdef';
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      IAM_URL: stack.iam.url,
      LOCKSTEP_API_KEY: stack.iam.apiKeyFor('lockstep'),
      LOCKSTEP_KP_ENDPOINTS: JSON.stringify(
        Object.fromEntries(Object.entries(stack.kp.regions).map(([r, v]) => [r, v.url])),
      ),
      CLOUDANT_URL: couch.url,
      ...couch.env,
      CLOUDANT_DB_PREFIX: 'cold-',
      LOCKSTEP_API_ROLES: `${auditor.iamId}=auditor`,
      // the events function needs the identity lockstep acts as (issue 13: only its own calls are evidence)
      LOCKSTEP_OWN_IAM_IDS: stack.iam.identities.find((i) => i.name === 'lockstep')!.iamId,
      LOCKSTEP_EVENTS_TOKENS: `bench:${eventsToken}`,
      LOCKSTEP_CRON_SECRETS: `bench:${eventsToken}`,
      LOCKSTEP_LOG_LEVEL: 'error',
      LOCKSTEP_MAX_EXECUTION_SECONDS: '60',
    };
    const tokenRes = await fetch(`${stack.iam.url}/identity/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'urn:ibm:params:oauth:grant-type:apikey', apikey: auditor.apiKey }),
    });
    const token = ((await tokenRes.json()) as { access_token: string }).access_token;
    const cadf = {
      id: 'bench-cold-start-event',
      eventTime: new Date().toISOString(),
      action: 'kms.secrets.read',
      outcome: 'success',
      target: { id: 'crn:v1:bluemix:public:kms:us-south:a/0:00000000-0000-4000-8000-000000000000:key:x' },
    };
    const params: Record<string, unknown> = {
      rotate: toCronParams({
        id: 'bench-cold-start',
        source: 'bench',
        time: new Date().toISOString(),
        data: JSON.stringify({ source: 'cron', cronSecret: eventsToken }),
        contentType: 'application/json',
      }),
      events: toCeParams({
        method: 'POST',
        path: '/',
        headers: { 'content-type': 'application/json', 'x-lockstep-token': eventsToken },
        body: Buffer.from(JSON.stringify(cadf)),
      }),
      api: toCeParams({ method: 'GET', path: '/v1/groups', headers: { authorization: `Bearer ${token}` } }),
    };
    const child = join(benchDir, '_lib', 'coldStartChild.cjs');
    for (let r = 0; r < RUNS; r++) {
      nodeStart.push((await timeChild(['-e', '0'], env)).wallMs);
      for (const b of bundles) {
        const pfile = join(work, `${b.fn}.params.json`);
        await writeFile(pfile, JSON.stringify(params[b.fn]));
        const { wallMs, out } = await timeChild([child, b.file, pfile], env);
        if (!out.ok) throw new Error(`${b.fn}: ${String(out.error)}`);
        const list = runs.get(b.fn) ?? [];
        // an error answer is not a cold start worth measuring (its path is shorter): stop and say why
        if (Number(out.status) >= 500) throw new Error(`${b.fn} answered ${out.status}: ${String(out.body ?? '')}`);
        list.push({ wallMs, requireMs: Number(out.requireMs), invokeMs: Number(out.invokeMs), status: out.status });
        runs.set(b.fn, list);
      }
    }
  } finally {
    await stack.close();
    await couch.stop();
    await rm(work, { recursive: true, force: true });
  }

  const nodeMs = median(nodeStart);
  const rows = bundles.map((b) => {
    const rs = runs.get(b.fn)!;
    const wall = summarize(rs.map((x) => x.wallMs));
    return [
      b.fn,
      fmtKb(b.bytes),
      `${fmtMs(wall.median)} (${fmtMs(wall.min)}–${fmtMs(wall.max)}, spread ${(wall.spread * 100).toFixed(0)}%)`,
      fmtMs(nodeMs),
      fmtMs(median(rs.map((x) => x.requireMs))),
      fmtMs(median(rs.map((x) => x.invokeMs))),
      `${(wall.median / TARGET_MS).toFixed(2)}×`,
      wall.median <= TARGET_MS ? 'yes' : '**no**',
      String(rs[0]?.status ?? '?'),
      fmtMs(wall.median - nodeMs),
    ];
  });
  const all = new Set<string>();
  for (const b of bundles) for (const k of b.sizes.keys()) all.add(k);
  const contributors = [...all]
    .map((k) => ({ k, max: Math.max(...bundles.map((b) => b.sizes.get(k) ?? 0)) }))
    .filter((x) => x.max >= 1024)
    .sort((a, b) => b.max - a.max);
  const depRows = contributors.map(({ k }) => [
    k,
    ...bundles.map((b) => {
      const v = b.sizes.get(k) ?? 0;
      return v ? `${fmtKb(v)} (${((v / b.bytes) * 100).toFixed(0)}%)` : '—';
    }),
  ]);
  const cli = await cliStart();
  const md = [
    '# Benchmark 4 — cold start and bundle size',
    '',
    `\`npx tsx bench/cold-start.ts --runs ${RUNS}\` — ${machineLine()}.`,
    '',
    'Each function is bundled as the serverless plugin does (esbuild: bundle, cjs, node20, minified, no legal comments).',
    'A run spawns a fresh `node` that requires the bundle and calls `main(params)` once with Code Engine-shaped params',
    '(rotate: a cron ping → one scheduler tick over an empty store; events: a CADF event with a static token; api:',
    '`GET /v1/groups` with an auditor IAM token), against the local IAM, Key Protect emulator and embedded store.',
    "*cold start* = spawn → answer, as the parent sees it; it includes Node's own start-up, measured alone in the same",
    'run (`node -e 0`). *require* and *first invocation* are measured inside the child.',
    '',
    mdTable(
      [
        'function',
        'bundle',
        'cold start, median (range, spread)',
        'node -e 0',
        'require',
        'first invocation',
        'ratio to 300 ms',
        'target ≤ 300 ms',
        'status',
        'cold start − node -e 0',
      ],
      rows,
    ),
    '',
    cli.md,
    '',
    '## What each dependency contributes (bytes in the minified output, ≥ 1 KB)',
    '',
    mdTable(['module', ...bundles.map((b) => `${b.fn} (${fmtKb(b.bytes)})`)], depRows),
    '',
  ].join('\n');
  await writeResult('cold-start', md, {
    scenario: 'cold-start',
    machine: machineLine(),
    runs: RUNS,
    nodeStartMs: nodeStart,
    cli: cli.json,
    bundles: bundles.map((b) => ({
      fn: b.fn,
      bytes: b.bytes,
      contributors: Object.fromEntries([...b.sizes.entries()].sort((x, y) => y[1] - x[1])),
      runs: runs.get(b.fn),
    })),
  });
}

await main();
