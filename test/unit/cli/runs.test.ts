/**
 * `lockstep run retry|stop <runId>`: the operator's unblock commands go to `POST /v1/runs/{id}/retry|stop` with the
 * caller's IAM token and the reason; `--json` prints the API's answer; a malformed run id is a usage error (exit 2)
 * that calls nothing.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../../../src/cli/cli.js';
import type { CliIo } from '../../../src/cli/context.js';

function harness() {
  const out: string[] = [];
  const err: string[] = [];
  const requests: Array<{ method: string; path: string; auth: string | null; body: string }> = [];
  const fetchImpl = (async (input: string | URL, init?: RequestInit) => {
    const url = new URL(String(input));
    if (url.host === 'iam.test') return Response.json({ access_token: 'operator-token', expires_in: 3600 });
    const headers = new Headers(init?.headers);
    requests.push({
      method: init?.method ?? 'GET',
      path: url.pathname,
      auth: headers.get('authorization'),
      body: String(init?.body ?? ''),
    });
    const stopped = url.pathname.endsWith('/stop');
    return Response.json(
      {
        runId: 'run-payments-g7-0000aaaa',
        groupId: 'payments',
        action: stopped ? 'stopped' : 'retried',
        status: stopped ? 'stopped' : 'running',
        step: 'stage',
        groupStatus: stopped ? 'degraded' : 'rotating',
        ...(stopped
          ? {
              stop: {
                step: 'stage',
                staged: [{ region: 'us-east', versionId: 'v-2' }],
                escrowKept: true,
                summary: 'Stopped by operator:x at step stage: duplicate(s) us-east …',
              },
            }
          : {}),
        links: { run: '/v1/runs/run-payments-g7-0000aaaa' },
      },
      { status: stopped ? 200 : 202 },
    );
  }) as typeof fetch;
  const io: CliIo = {
    stdout: (s) => out.push(s),
    stderr: (s) => err.push(s),
    env: { LOCKSTEP_API_URL: 'http://api.test', LOCKSTEP_IAM_URL: 'http://iam.test', LOCKSTEP_API_KEY: 'k' },
    cwd: mkdtempSync(join(tmpdir(), 'lockstep-cli-runs-')),
    isTty: false,
    interrupted: new Promise(() => {}),
    fetch: fetchImpl,
  };
  return { io, requests, out: () => out.join(''), err: () => err.join('') };
}

describe('lockstep run retry|stop', () => {
  it('stops a run through the API with the reason and prints what it left', async () => {
    const h = harness();
    const code = await runCli(['run', 'stop', 'run-payments-g7-0000aaaa', '--reason', 'change freeze'], h.io);
    expect(code).toBe(0);
    expect(h.requests).toEqual([
      {
        method: 'POST',
        path: '/v1/runs/run-payments-g7-0000aaaa/stop',
        auth: 'Bearer operator-token',
        body: JSON.stringify({ reason: 'change freeze' }),
      },
    ]);
    expect(h.out()).toContain('us-east v-2');
    expect(h.out()).toContain('degraded');
  });

  it('retries a run and prints the API answer as JSON with --json', async () => {
    const h = harness();
    expect(await runCli(['run', 'retry', 'run-payments-g7-0000aaaa', '--json'], h.io)).toBe(0);
    expect(h.requests.map((r) => `${r.method} ${r.path} ${r.body}`)).toEqual([
      'POST /v1/runs/run-payments-g7-0000aaaa/retry {}',
    ]);
    expect(JSON.parse(h.out())).toMatchObject({ action: 'retried', groupStatus: 'rotating' });
  });

  it('refuses a malformed run id with exit 2 and calls nothing', async () => {
    const h = harness();
    expect(await runCli(['run', 'stop', '../groups'], h.io)).toBe(2);
    expect(h.requests).toEqual([]);
    expect(h.err()).toMatch(/not a run id/);
  });
});
