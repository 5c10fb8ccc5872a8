import { CommanderError } from 'commander';
import type { CliIo } from './context.js';
import { defaultHandlers } from './handlers.js';
import { Output } from './output.js';
import type { CommandHandlers } from './program.js';
import { buildProgram, commanderExitCode } from './program.js';

/**
 * Runs the `lockstep` CLI with `argv` (without node and script) and resolves with its exit code. Never calls
 * `process.exit`; `main.ts` does.
 */
export async function runCli(
  argv: readonly string[],
  io: CliIo,
  handlers: CommandHandlers = defaultHandlers,
): Promise<number> {
  let pending: Promise<number> | undefined;
  const program = buildProgram(io, handlers, (p) => {
    pending = p;
  });
  try {
    await program.parseAsync([...argv], { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) return commanderExitCode(err);
    // errors raised while parsing options (bad duration, bad integer) — the context does not exist yet
    return new Output({
      json: wantsJson(argv),
      quiet: false,
      color: false,
      stdout: io.stdout,
      stderr: io.stderr,
    }).error(err);
  }
  return pending ?? 0;
}

/** `--json`, or ibmcloud's `--output json` / `-o json` (any case, also `--output=json`, `-ojson`). */
export function wantsJson(argv: readonly string[]): boolean {
  return argv.some((a, i) => {
    const next = (argv[i + 1] ?? '').toLowerCase();
    return a === '--json' || ((a === '--output' || a === '-o') && next === 'json') || /^(--output=|-o=?)json$/i.test(a);
  });
}
