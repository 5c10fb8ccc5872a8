/**
 * Helpers shared by the benchmark scenarios: statistics, result files, instrumentation of the ports and of outgoing
 * HTTP, memory readings, and the RSA key cache that keeps the emulator's key generation off the measured path.
 */
import { execFileSync } from 'node:child_process';
import { generateKeyPair as generateKeyPairCb, type KeyObject } from 'node:crypto';
import { subscribe } from 'node:diagnostics_channel';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import type { ClientRequest, IncomingMessage } from 'node:http';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { KeyProtectPort, Stores } from '../../src/app/index.js';

export const benchDir = join(dirname(fileURLToPath(import.meta.url)), '..');
export const resultsDir = join(benchDir, 'results');

// ───────────────────────────── statistics ─────────────────────────────

export function quantile(xs: number[], q: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo]! + (s[hi]! - s[lo]!) * (pos - lo);
}

/** Nearest-rank percentile (what latency tables usually mean by p95). */
export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

export const median = (xs: number[]) => quantile(xs, 0.5);

export interface Summary {
  n: number;
  median: number;
  min: number;
  max: number;
  /** (max − min) / median: how far apart the repetitions were. */
  spread: number;
}

export function summarize(xs: number[]): Summary {
  const m = median(xs);
  const min = Math.min(...xs);
  const max = Math.max(...xs);
  return { n: xs.length, median: m, min, max, spread: m > 0 ? (max - min) / m : 0 };
}

export const fmtMs = (ms: number) =>
  !Number.isFinite(ms) ? 'timeout' : ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`;
export const fmtRatio = (r: number) => `${r.toFixed(2)}×`;
export const fmtSummaryMs = (s: Summary) => `${fmtMs(s.median)} (${fmtMs(s.min)}–${fmtMs(s.max)}, n=${s.n})`;
export const fmtKb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KB`;

export function mdTable(header: string[], rows: Array<Array<string | number>>): string {
  return [
    `| ${header.join(' | ')} |`,
    `|${header.map(() => '---').join('|')}|`,
    ...rows.map((r) => `| ${r.map(String).join(' | ')} |`),
  ].join('\n');
}

/** Writes `bench/results/<name>.md` and `.json`, and prints the markdown. */
export async function writeResult(name: string, markdown: string, json: unknown): Promise<void> {
  await mkdir(resultsDir, { recursive: true });
  await writeFile(join(resultsDir, `${name}.md`), `${markdown.trimEnd()}\n`);
  await writeFile(join(resultsDir, `${name}.json`), `${JSON.stringify(json, null, 2)}\n`);
  console.log(markdown);
}

/** The commit measured, and whether product files had uncommitted changes (others work in this tree). */
export function gitLine(): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: benchDir, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src', 'functions'], {
      cwd: benchDir,
      encoding: 'utf8',
    })
      .split('\n')
      .filter(Boolean).length;
    return `commit ${head}${dirty ? ` + ${dirty} uncommitted file(s) in src/ and functions/` : ''}`;
  } catch {
    return 'commit unknown';
  }
}

export function machineLine(): string {
  const load = loadavg()
    .map((x) => x.toFixed(1))
    .join(' / ');
  return `${new Date().toISOString()}, ${gitLine()}, Node ${process.version}, ${cpus().length} cores, load average ${load} (1/5/15 min)`;
}

const require = createRequire(import.meta.url);

/** Peak and current RSS of a process (MB), from /proc. */
export async function memoryOf(pid: number): Promise<{ peakMb: number; rssMb: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(status)?.[1] ?? Number.NaN);
  return { peakMb: kb('VmHWM') / 1024, rssMb: kb('VmRSS') / 1024 };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ───────────────────────────── RSA key cache ─────────────────────────────

/**
 * The emulator hands every import token a fresh RSA-4096 pair, generated on the emulator's CPU (≈1–4 s each on this
 * machine). Real Key Protect answers `POST /import_token` in one round trip, so that generation time is an artefact
 * of the stand-in, not a cost of lockstep. This replaces `crypto.generateKeyPair` for RSA-4096 in *this* process
 * with a cycle over a few pre-generated pairs (cached in the OS temp dir), so consecutive tokens still get different
 * keys. Call it before the emulator creates its first token. Returns the number of cached pairs.
 */
export async function installRsaKeyCache(pairs = 3): Promise<number> {
  const file = join(tmpdir(), 'lockstep-bench-rsa4096.json');
  let pems: Array<{ publicKey: string; privateKey: string }> = [];
  try {
    pems = JSON.parse(await readFile(file, 'utf8'));
  } catch {
    pems = [];
  }
  while (pems.length < pairs) {
    const pair = await new Promise<{ publicKey: string; privateKey: string }>((ok, fail) =>
      generateKeyPairCb(
        'rsa',
        {
          modulusLength: 4096,
          publicExponent: 0x10001,
          publicKeyEncoding: { type: 'spki', format: 'pem' },
          privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
        },
        (err, publicKey, privateKey) => (err ? fail(err) : ok({ publicKey, privateKey })),
      ),
    );
    pems.push(pair);
    await writeFile(file, JSON.stringify(pems), { mode: 0o600 });
  }
  const cjs = require('node:crypto') as typeof import('node:crypto');
  const keys = pems.map((p) => ({
    publicKey: cjs.createPublicKey(p.publicKey),
    privateKey: cjs.createPrivateKey(p.privateKey),
  }));
  const original = cjs.generateKeyPair;
  let next = 0;
  const patched = ((type: string, options: { modulusLength?: number }, cb: unknown) => {
    if (type === 'rsa' && options?.modulusLength === 4096 && typeof cb === 'function') {
      const k = keys[next++ % keys.length]!;
      setImmediate(() => (cb as (e: null, pub: KeyObject, priv: KeyObject) => void)(null, k.publicKey, k.privateKey));
      return;
    }
    return (original as (...a: unknown[]) => unknown)(type, options, cb);
  }) as typeof original;
  cjs.generateKeyPair = patched;
  syncBuiltinESMExports();
  return keys.length;
}

// ───────────────────────────── outgoing HTTP ─────────────────────────────

export interface HttpTally {
  total: number;
  byStatus: Map<number, number>;
  /** Successful (non-429) requests per `Bluemix-Instance`. */
  okByInstance: Map<string, number>;
  rateLimitedByInstance: Map<string, number>;
}

/**
 * Counts outgoing HTTP requests of this process to the given origins (`host:port`), by status and by Key Protect
 * instance (`Bluemix-Instance` header), through Node's `http.client.*` diagnostics channels.
 */
export function countHttp(originsOf: () => Set<string>): { tally: HttpTally; reset(): void } {
  const tally: HttpTally = { total: 0, byStatus: new Map(), okByInstance: new Map(), rateLimitedByInstance: new Map() };
  subscribe('http.client.response.finish', (msg) => {
    const { request, response } = msg as { request: ClientRequest; response: IncomingMessage };
    if (!originsOf().has(String(request.getHeader('host') ?? ''))) return;
    const status = response.statusCode ?? 0;
    tally.total += 1;
    tally.byStatus.set(status, (tally.byStatus.get(status) ?? 0) + 1);
    const instance = String(request.getHeader('bluemix-instance') ?? '');
    if (instance) {
      const map = status === 429 ? tally.rateLimitedByInstance : tally.okByInstance;
      map.set(instance, (map.get(instance) ?? 0) + 1);
    }
  });
  return {
    tally,
    reset() {
      tally.total = 0;
      tally.byStatus.clear();
      tally.okByInstance.clear();
      tally.rateLimitedByInstance.clear();
    },
  };
}

// ───────────────────────────── port instrumentation ─────────────────────────────

export interface Span {
  kind: 'kp' | 'store';
  op: string;
  startMs: number;
  endMs: number;
}

/** Records one span per call of every async method of `target` (a port object). */
function recordSpans<T extends object>(target: T, kind: Span['kind'], prefix: string, spans: Span[]): T {
  return new Proxy(target, {
    get(obj, prop, receiver) {
      const v = Reflect.get(obj, prop, receiver);
      if (typeof v !== 'function') return v;
      return (...args: unknown[]) => {
        const out = v.apply(obj, args);
        if (out && typeof (out as Promise<unknown>).then === 'function') {
          const startMs = performance.now();
          const op = `${prefix}${String(prop)}`;
          return (out as Promise<unknown>).finally(() => spans.push({ kind, op, startMs, endMs: performance.now() }));
        }
        return out;
      };
    },
  });
}

export function instrumentKp(kp: KeyProtectPort, spans: Span[]): KeyProtectPort {
  return recordSpans(kp, 'kp', '', spans);
}

export function instrumentStores<S extends Stores>(stores: S, spans: Span[]): S {
  const out = { ...stores } as S;
  for (const key of ['groups', 'runs', 'leases', 'events', 'lineage', 'checkpoints'] as const) {
    (out as Record<string, unknown>)[key] = recordSpans(stores[key] as object, 'store', `${key}.`, spans);
  }
  return out;
}

/** Total time covered by at least one of `spans` between `from` and `to`. */
export function coveredMs(spans: Span[], from: number, to: number): number {
  const iv = spans
    .map((s) => [Math.max(from, s.startMs), Math.min(to, s.endMs)] as const)
    .filter(([a, b]) => b > a)
    .sort((x, y) => x[0] - y[0]);
  let total = 0;
  let curA = Number.NEGATIVE_INFINITY;
  let curB = Number.NEGATIVE_INFINITY;
  for (const [a, b] of iv) {
    if (a > curB) {
      if (curB > curA) total += curB - curA;
      curA = a;
      curB = b;
    } else curB = Math.max(curB, b);
  }
  if (curB > curA) total += curB - curA;
  return total;
}

/** Time in [from, to] covered by `a` spans but by no `b` span. */
export function coveredOnlyByMs(a: Span[], b: Span[], from: number, to: number): number {
  return coveredMs([...a, ...b], from, to) - coveredMs(b, from, to);
}
