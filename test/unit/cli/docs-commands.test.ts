import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../../../src/cli/cli.js';
import type { CliIo } from '../../../src/cli/context.js';
import { defaultHandlers } from '../../../src/cli/handlers.js';
import type { CommandHandlers } from '../../../src/cli/program.js';

/**
 * Every `npx lockstep …` command shown in README.md and docs/ must be one the CLI accepts: no usage error (exit 2).
 * Handlers that change things are spied; read commands go to a configured but unreachable API and fail with exit 1
 * ("cannot reach"), which proves they parsed. The e2e test runs them for real against `lockstep dev`.
 */
const DOCS = ['README.md', 'docs/cli.md', 'docs/local-stack.md'];

function documentedCommands(): { file: string; argv: string[] }[] {
  const found: { file: string; argv: string[] }[] = [];
  for (const file of DOCS) {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const m = /^\s*npx lockstep ([^#`|]+?)\s*(?:#.*)?$/.exec(line);
      if (!m?.[1]) continue;
      found.push({ file, argv: m[1].trim().split(/\s+/) });
    }
  }
  return found;
}

const commands = documentedCommands();

describe('commands shown in the docs', () => {
  it('finds the documented commands', () => {
    expect(commands.length).toBeGreaterThanOrEqual(4);
  });

  it.each(commands.map((c) => ({ ...c, line: c.argv.join(' ') })))('$file: lockstep $line', async ({ argv }) => {
    // Arrange
    const called: string[] = [];
    const spy = Object.fromEntries(
      Object.keys(defaultHandlers).map((k) => [
        k,
        async () => {
          called.push(k);
          return 0;
        },
      ]),
    ) as unknown as CommandHandlers;
    const err: string[] = [];
    const io: CliIo = {
      stdout: () => {},
      stderr: (s) => err.push(s),
      // a configured (unreachable) deployment: handlers are spied, so nothing is contacted
      env: { LOCKSTEP_API_URL: 'http://127.0.0.1:9', LOCKSTEP_IAM_URL: 'http://127.0.0.1:9', LOCKSTEP_API_KEY: 'k' },
      cwd: mkdtempSync(join(tmpdir(), 'lockstep-docs-')),
      isTty: false,
      interrupted: new Promise(() => {}),
    };
    // Act
    const code = await runCli(argv, io, spy);
    // Assert
    const stderr = err.join('');
    expect(stderr).not.toMatch(/unknown (command|option)|missing required|too many arguments|invalid/i);
    expect(code === 0 ? called : stderr).toEqual(
      code === 0 ? [expect.any(String)] : expect.stringMatching(/cannot reach/),
    );
    expect(code).not.toBe(2);
  });
});
