/**
 * The local stack end to end: `lockstep dev` as a child process, the CLI as child processes against it (`--json`),
 * and the result checked across regions through IBM's Key Protect SDK; then Ctrl-C (SIGINT) must stop everything
 * and free every port.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import KeyProtectV2 from '@ibm-cloud/ibm-key-protect/ibm-key-protect-api/v2.js';
import { IamAuthenticator } from 'ibm-cloud-sdk-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DevJson } from '../../src/local/dev/index.js';

const ROOT = resolve(import.meta.dirname, '../..');
const BIN = join(ROOT, 'bin/lockstep.js');
const dir = mkdtempSync(join(tmpdir(), 'lockstep-e2e-'));
const devFile = join(dir, 'dev.json');

let stack: ChildProcess | undefined;
let stackLog = '';
let dev: DevJson;
let exited: Promise<number | null>;

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `lockstep <args>` against the stack (dev.json through --dev-file) and collects its output. */
function cli(...args: string[]): Promise<CliResult> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [BIN, '--dev-file', devFile, ...args], {
      cwd: dir,
      env: { ...process.env, NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.on('error', fail);
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

function json(r: CliResult): Record<string, unknown> {
  try {
    return JSON.parse(r.stdout) as Record<string, unknown>;
  } catch {
    throw new Error(`not JSON (exit ${r.code}): ${r.stdout}\nstderr: ${r.stderr}`);
  }
}

const portOpen = (url: string) =>
  new Promise<boolean>((done) => {
    const u = new URL(url);
    const s = connect(Number(u.port), u.hostname);
    s.once('connect', () => {
      s.destroy();
      done(true);
    });
    s.once('error', () => done(false));
  });

beforeAll(async () => {
  stack = spawn(
    process.execPath,
    [
      BIN,
      'dev',
      '--fresh',
      '--data-dir',
      join(dir, 'data'),
      '--dev-file',
      devFile,
      '--port-base',
      '0',
      '--tick',
      '2s',
      '--demo-every',
      '1h',
    ],
    { cwd: dir, env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  stack.stdout?.on('data', (d) => {
    stackLog += d;
  });
  stack.stderr?.on('data', (d) => {
    stackLog += d;
  });
  exited = new Promise((done) => stack!.once('exit', (code) => done(code)));
  // wait for dev.json (written once everything is ready), or for the stack to die
  const gaveUp = Date.now() + 100_000;
  while (!existsSync(devFile)) {
    if (stack.exitCode !== null) throw new Error(`lockstep dev exited ${stack.exitCode}:\n${stackLog}`);
    if (Date.now() > gaveUp) throw new Error(`no dev.json after 100 s:\n${stackLog}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  dev = JSON.parse(readFileSync(devFile, 'utf8')) as DevJson;
}, 120_000);

afterAll(async () => {
  if (stack && stack.exitCode === null) {
    stack.kill('SIGKILL');
    await exited;
  }
  rmSync(dir, { recursive: true, force: true });
});

describe('lockstep dev (e2e)', () => {
  it('writes dev.json with the fixed shape and prints a guide', () => {
    expect(Object.keys(dev.iam.apiKeys).sort()).toEqual(['auditor', 'operator']);
    expect(Object.keys(dev.keyProtect).sort()).toEqual(['eu-de', 'us-east', 'us-south']);
    for (const k of Object.values(dev.keyProtect)) {
      expect(k.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(k.instanceId).toMatch(/^[0-9a-f-]{36}$/);
    }
    expect(dev.cloudant.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(dev.api.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(dev.events.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(dev.events.token.length).toBeGreaterThan(10);
    // by default the emulator's events reach the function as IBM delivers them: Cloud Logs alerts via Event Notifications
    expect(dev.events.relayUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(dev.groups).toEqual(['demo']);
    expect(stackLog).toContain('Timeline page');
    expect(stackLog).toMatch(/one-rotation-per-key-per-hour rule is shortened/);
  });

  it('plans, rotates, reports status and history, and verifies the audit chain through the CLI', async () => {
    // plan: a dry run that changes nothing
    const plan = await cli('--json', 'plan', 'demo');
    expect(plan.code, plan.stderr).toBe(0);
    expect(json(plan)).toMatchObject({ groupId: 'demo', nextGeneration: 2, canStartNow: true });

    // rotate: through the API, followed until the run completes
    const rotate = await cli('--json', 'rotate', 'demo', '--timeout', '90s', '--reason', 'e2e');
    expect(rotate.code, `${rotate.stderr}\n--- stack ---\n${stackLog}`).toBe(0);
    const run = json(rotate).run as { status: string; generation: number; members: unknown[] };
    expect(run.status).toBe('completed');
    expect(run.generation).toBe(2);
    expect(rotate.stderr).toMatch(/promote/);

    const status = await cli('--json', 'status', 'demo');
    expect(status.code, status.stderr).toBe(0);
    expect(json(status).group).toMatchObject({ id: 'demo', status: 'healthy', currentGeneration: 2 });

    const history = await cli('--json', 'history', 'demo');
    expect(history.code, history.stderr).toBe(0);
    const generations = json(history).generations as Array<{ generation: number; status: string; members: unknown[] }>;
    expect(generations.map((g) => g.generation)).toEqual([2, 1]);
    expect(generations.every((g) => g.status === 'complete' && g.members.length === 3)).toBe(true);

    const verify = await cli('--json', 'verify', 'demo');
    expect(verify.code, verify.stderr).toBe(0);
    expect(json(verify)).toMatchObject({ groupId: 'demo', ok: true, result: 'ok' });
    const checked = json(verify).members as Array<{ ok: boolean; currentVersionId: string; expectedVersionId: string }>;
    expect(checked).toHaveLength(3);
    expect(checked.every((m) => m.ok && m.currentVersionId === m.expectedVersionId)).toBe(true);
    const verified = json(await cli('--json', 'status', 'demo')).group as { lastVerification?: unknown };
    // the CLI's verification, or the alert the rotation raised through the relay if it arrived since: both clean
    expect(verified.lastVerification).toMatchObject({
      trigger: expect.stringMatching(/^(operator:cli|alert:)/),
      result: 'ok',
      problems: [],
    });

    const audit = await cli('--json', 'audit', 'verify', 'demo');
    expect(audit.code, audit.stderr).toBe(0);
    expect(json(audit)).toMatchObject({ ok: true, groups: [{ groupId: 'demo', ok: true, records: 2 }] });
  });

  it('leaves every member holding the same material: wrap at the primary, unwrap at each duplicate (IBM SDK)', async () => {
    // Arrange: the members and versions of the newest generation, from the CLI
    const history = json(await cli('--json', 'history', 'demo', '--limit', '1'));
    const latest = (
      history.generations as Array<{
        members: Array<{ role: string; region: string; keyId: string; keyVersionId: string }>;
      }>
    )[0]!;
    const sdk = (region: string) =>
      new KeyProtectV2({
        authenticator: new IamAuthenticator({ apikey: dev.iam.apiKeys.operator, url: dev.iam.url }),
        serviceUrl: dev.keyProtect[region]!.url,
      });
    const body = (o: object) => Buffer.from(JSON.stringify(o));
    const primary = latest.members.find((m) => m.role === 'primary')!;
    const dek = randomBytes(32).toString('base64');
    // Act
    const wrapped = (
      await sdk(primary.region).wrapKey({
        bluemixInstance: dev.keyProtect[primary.region]!.instanceId,
        id: primary.keyId,
        keyActionWrapBody: body({ plaintext: dek, aad: ['e2e'] }),
      })
    ).result as { ciphertext: string; keyVersion: { id: string } };
    // Assert
    expect(wrapped.keyVersion.id).toBe(primary.keyVersionId);
    for (const m of latest.members.filter((x) => x.role === 'duplicate')) {
      const un = (
        await sdk(m.region).unwrapKey({
          bluemixInstance: dev.keyProtect[m.region]!.instanceId,
          id: m.keyId,
          keyActionUnwrapBody: body({ ciphertext: wrapped.ciphertext, aad: ['e2e'] }),
        })
      ).result as { plaintext: string; keyVersion: { id: string } };
      expect(un.plaintext, m.region).toBe(dek);
      expect(un.keyVersion.id, m.region).toBe(m.keyVersionId);
    }
  });

  it('rejects bad CLI input with exit 2 and a clear message, changing nothing', async () => {
    const bad = await cli('rotate', 'Not_A_Group');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/"Not_A_Group" is not a group id/);
    const unknown = await cli('--json', 'status', 'no-such-group');
    expect(unknown.code).toBe(1);
    expect(JSON.parse(unknown.stderr).error.code).toBe('GROUP_NOT_FOUND');
  });

  it('stops cleanly on Ctrl-C (SIGINT): exit 0, dev.json removed, every port freed', async () => {
    stack!.kill('SIGINT');
    expect(await exited).toBe(0);
    expect(stackLog).toMatch(/stopped; every port is free/);
    expect(existsSync(devFile)).toBe(false);
    const urls = [
      dev.iam.url,
      dev.cloudant.url,
      dev.api.url,
      dev.events.url,
      dev.events.relayUrl!,
      ...Object.values(dev.keyProtect).map((k) => k.url),
    ];
    for (const u of urls) expect(await portOpen(u), u).toBe(false);
  });
});
