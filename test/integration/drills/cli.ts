/** Helpers of the drill and evidence HTTP tests: the real CLI in-process, the timeline page with a session. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../../../src/cli/cli.js';
import type { LocalStack } from '../../support/localStack.js';

/** Runs the real CLI in-process against an API over HTTP, as `role` of the stack's local IAM. */
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

/** Logs in to the page with `token` and returns the group page's HTML (status 200 asserted by the caller). */
export async function groupPage(
  http: {
    request(
      method: string,
      path: string,
      opts?: Record<string, unknown>,
    ): Promise<{ status: number; text: string; headers: Record<string, string | undefined> }>;
  },
  token: string,
  groupId: string,
) {
  const login = await http.request('POST', '/ui/login', {
    body: `token=${encodeURIComponent(token)}`,
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
  });
  const cookie = (login.headers['set-cookie'] ?? '').split(';')[0] ?? '';
  return http.request('GET', `/ui/groups/${groupId}`, { headers: { cookie } });
}
