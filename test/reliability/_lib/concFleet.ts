/**
 * Helpers of the concurrency scenario: bundle the orchestrator child (concChild.ts) once with esbuild, spawn N of
 * them against a local stack, collect what they print, stop them (SIGTERM, then SIGKILL), and classify their
 * output: tick summaries and log lines that surface an import-token / nonce conflict to users versus the internal
 * contention the leases absorb.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { TickSummary } from '../../../src/app/tick.js';
import { bundleChild } from '../../support/bundleChild.js';
import { childEnv } from '../../support/childProcess.js';
import type { LocalStack } from '../../support/localStack.js';
import type { ConcChildStats } from './concChild.js';

/** The child as one CommonJS file (starts in ~0.3 s instead of ~1–2 s under tsx); `dispose` removes it. */
export async function bundleConcChild(): Promise<{ file: string; buildMs: number; dispose(): void }> {
  const t0 = Date.now();
  const { file, dispose } = await bundleChild(fileURLToPath(new URL('./concChild.ts', import.meta.url)), 'concChild');
  return { file, buildMs: Date.now() - t0, dispose };
}

/** One running orchestrator child and everything it printed. */
export interface ConcChild {
  holder: string;
  proc: ChildProcess;
  /** Wall ms from spawn to `READY`. */
  readyMs?: number;
  ticks: TickSummary[];
  stats?: ConcChildStats;
  failed?: string;
  /** Log lines (stderr), JSON or not. */
  logLines: string[];
  exit?: { code: number | null; signal: NodeJS.Signals | null };
}

/** Spawns `count` children of the bundled tick loop against `s`; they tick once {@link goConcChildren} is called. */
export function spawnConcChildren(
  s: LocalStack,
  file: string,
  count: number,
  extraEnv: Record<string, string> = {},
): ConcChild[] {
  const baseEnv = {
    ...process.env,
    ...childEnv(s),
    ...extraEnv,
  };
  return Array.from({ length: count }, (_, i) => {
    const holder = `orch${i + 1}`;
    const t0 = Date.now();
    const proc = spawn(process.execPath, [file], {
      env: { ...baseEnv, LOCKSTEP_CONC_HOLDER: holder },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const c: ConcChild = { holder, proc, ticks: [], logLines: [] };
    lines(proc.stdout!, (line) => {
      if (line.startsWith('READY')) c.readyMs = Date.now() - t0;
      else if (line.startsWith('TICK ')) c.ticks.push(JSON.parse(line.slice(5)) as TickSummary);
      else if (line.startsWith('STATS ')) c.stats = JSON.parse(line.slice(6)) as ConcChildStats;
      else if (line.startsWith('FAILED')) c.failed = line;
    });
    lines(proc.stderr!, (line) => c.logLines.push(line));
    proc.on('exit', (code, signal) => {
      c.exit = { code, signal };
    });
    return c;
  });
}

function lines(stream: NodeJS.ReadableStream, onLine: (l: string) => void): void {
  let buf = '';
  stream.on('data', (d: Buffer) => {
    buf += d.toString();
    let i = buf.indexOf('\n');
    while (i >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (line.trim()) onLine(line);
      i = buf.indexOf('\n');
    }
  });
}

/** Waits until every child is ready (or `timeoutMs`), then lets them all start ticking. */
export async function goConcChildren(children: readonly ConcChild[], timeoutMs = 60_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (children.some((c) => c.readyMs === undefined && !c.exit) && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 50));
  }
  for (const c of children) if (!c.exit) c.proc.stdin!.write('GO\n');
}

/** SIGTERM (each finishes its tick and prints STATS), SIGKILL whatever is still alive after `graceMs`. */
export async function stopConcChildren(children: readonly ConcChild[], graceMs = 15_000): Promise<void> {
  const alive = children.filter((c) => !c.exit && c.proc.exitCode === null && c.proc.signalCode === null);
  for (const c of alive) c.proc.kill('SIGTERM');
  const deadline = Date.now() + graceMs;
  while (alive.some((c) => !c.exit) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  for (const c of alive) if (!c.exit) c.proc.kill('SIGKILL');
  while (alive.some((c) => !c.exit) && Date.now() < deadline + 5_000) await new Promise((r) => setTimeout(r, 50));
}

/** Words that attribute a failure to the import token or its nonce (or to the rotate that such a race refuses). */
export const TOKEN_CONFLICT =
  /IMPORT_TOKEN|INCORRECT_NONCE|NONCE_MISMATCH|\bnonce\b|import token|KEY_ROTATION_NOT_PERMITTED|token:[a-z]/i;

/** One child's log line, parsed when it is JSON. */
export interface ParsedLogLine {
  level?: string;
  msg?: string;
  raw: string;
}

export function parseLogLine(raw: string): ParsedLogLine {
  try {
    const o = JSON.parse(raw) as Record<string, unknown>;
    return {
      raw,
      ...(typeof o.level === 'string' ? { level: o.level } : {}),
      ...(typeof o.msg === 'string' ? { msg: o.msg } : {}),
    };
  } catch {
    return { raw };
  }
}
