/**
 * Parent side of the crash matrices' child workers (`crashWorker.ts`; crash-matrix.test.ts, crash-kinds.test.ts): builds the worker once (an esbuild bundle —
 * a node start without tsx's on-the-fly compilation — or tsx, for comparison), spawns pre-started workers against
 * a {@link LocalStack}, hands one a run, waits for its marker and SIGKILLs it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { RotationConfig } from '../../../src/app/index.js';
import { bundleChild } from '../../support/bundleChild.js';
import { childEnv } from '../../support/childProcess.js';
import type { LocalStack } from '../../support/localStack.js';
import type { CrashWorkerCommand } from './crashWorker.js';

const WORKER_TS = fileURLToPath(new URL('./crashWorker.ts', import.meta.url));

/** How a worker is started. */
export interface CrashLauncher {
  mode: 'bundle' | 'tsx';
  args: string[];
  dispose(): void;
}

/** Bundles crashWorker.ts (and everything it imports) into one CommonJS file in a temporary directory. */
export async function bundledLauncher(): Promise<CrashLauncher> {
  const { file, dispose } = await bundleChild(WORKER_TS, 'crash-worker');
  return { mode: 'bundle', args: [file], dispose };
}

/** Runs crashWorker.ts through tsx (compiled at every start). */
export function tsxLauncher(): CrashLauncher {
  return { mode: 'tsx', args: ['--import', 'tsx', WORKER_TS], dispose: () => undefined };
}

export type WorkerEnd =
  | { kind: 'hanging'; persists: number; step: string; status: string }
  | { kind: 'finished'; persists: number; status: string; step: string }
  | { kind: 'failed'; message: string };

/** One child worker. */
export interface CrashWorker {
  pid: number;
  /** Everything it printed on stdout / stderr so far. */
  stdout(): string;
  stderr(): string;
  /** Random byte strings (≥ 16 bytes) it generated, reported on fd 3. */
  secrets(): Buffer[];
  /** Resolves when it printed READY (wall ms since spawn). */
  ready: Promise<number>;
  /** Sends it the run and waits for HANGING / FINISHED / FAILED (or its exit). */
  run(cmd: CrashWorkerCommand, timeoutMs: number): Promise<WorkerEnd>;
  /** SIGKILL; resolves with the exit signal once it is gone. */
  kill(): Promise<NodeJS.Signals | null>;
}

function collect(stream: Readable | null, sink: { text: string }, onData?: () => void): void {
  stream?.on('data', (d: Buffer) => {
    sink.text += d.toString();
    onData?.();
  });
}

/** Spawns a worker connected to the stack's emulator and store; it waits for work. */
export function spawnCrashWorker(launcher: CrashLauncher, s: LocalStack, config: Partial<RotationConfig>): CrashWorker {
  const started = Date.now();
  const child: ChildProcess = spawn(process.execPath, launcher.args, {
    env: {
      ...process.env,
      ...childEnv(s),
      LOCKSTEP_ROTATION_CONFIG: JSON.stringify(config),
    },
    stdio: ['pipe', 'pipe', 'pipe', 'pipe'],
  });
  const out = { text: '' };
  const err = { text: '' };
  const side = { text: '' };
  const waiters = new Set<() => void>();
  const poke = () => {
    for (const w of waiters) w();
  };
  collect(child.stdout, out, poke);
  collect(child.stderr, err);
  collect(child.stdio[3] as Readable | null, side);
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  let gone = false;
  void exited.then(() => {
    gone = true;
    poke();
  });

  /** Resolves when `test` matches stdout, or the process is gone, or the timeout passes. */
  const until = (test: RegExp, timeoutMs: number): Promise<RegExpMatchArray | undefined> =>
    new Promise((resolve) => {
      const check = () => {
        const m = out.text.match(test);
        if (m || gone) {
          waiters.delete(check);
          clearTimeout(timer);
          resolve(m ?? undefined);
        }
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        resolve(out.text.match(test) ?? undefined);
      }, timeoutMs);
      waiters.add(check);
      check();
    });

  const ready = until(/^READY$/m, 120_000).then((m) => {
    if (!m) throw new Error(`crash worker did not start: ${out.text.slice(-500)} ${err.text.slice(-1_500)}`);
    return Date.now() - started;
  });
  ready.catch(() => undefined);

  return {
    pid: child.pid ?? -1,
    stdout: () => out.text,
    stderr: () => err.text,
    secrets: () =>
      side.text
        .split('\n')
        .filter((l) => /^[0-9a-f]+$/.test(l))
        .map((h) => Buffer.from(h, 'hex')),
    ready,
    async run(cmd, timeoutMs) {
      await ready;
      child.stdin?.write(`${JSON.stringify(cmd)}\n`);
      const m = await until(/^(HANGING|FINISHED|FAILED) (.*)$/m, timeoutMs);
      if (!m) {
        return { kind: 'failed', message: `no marker (exit: ${gone}); stderr: ${err.text.slice(-1_000)}` };
      }
      const [, what, rest = ''] = m;
      const parts = rest.split(' ');
      if (what === 'HANGING') {
        return { kind: 'hanging', persists: Number(parts[0]), step: parts[1] ?? '', status: parts[2] ?? '' };
      }
      if (what === 'FINISHED') {
        return { kind: 'finished', persists: Number(parts[0]), status: parts[1] ?? '', step: parts[2] ?? '' };
      }
      return { kind: 'failed', message: rest };
    },
    async kill() {
      if (!gone) child.kill('SIGKILL');
      const [, signal] = await exited;
      return signal;
    },
  };
}
