/** Runs the real CLI in-process against an API over HTTP, as `role` of the stack's local IAM. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../../../src/cli/cli.js';
import type { LocalStack } from '../../support/localStack.js';

export function cliAgainst(s: LocalStack, apiUrl: () => string, role: 'operator' | 'auditor') {
  return async (...argv: string[]) => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await runCli(argv, {
      stdout: (t) => out.push(t),
      stderr: (t) => err.push(t),
      env: {
        LOCKSTEP_API_URL: apiUrl(),
        LOCKSTEP_IAM_URL: s.stack.iam.url,
        LOCKSTEP_API_KEY: s.stack.iam.apiKeyFor(role),
      },
      cwd: mkdtempSync(join(tmpdir(), 'lockstep-cli-')),
      isTty: false,
      interrupted: new Promise(() => {}),
    });
    return { code, json: () => JSON.parse(out.join('')), stderr: err.join('') };
  };
}
