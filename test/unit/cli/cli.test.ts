import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli, wantsJson } from '../../../src/cli/cli.js';
import { ENV_VARS, SETTING_SOURCES } from '../../../src/cli/config.js';
import type { CliIo } from '../../../src/cli/context.js';
import { defaultHandlers } from '../../../src/cli/handlers.js';
import type { CommandHandlers } from '../../../src/cli/program.js';
import { AppError } from '../../../src/core/index.js';

function io(over: Partial<CliIo> = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const value: CliIo = {
    stdout: (s) => out.push(s),
    stderr: (s) => err.push(s),
    env: {},
    cwd: mkdtempSync(join(tmpdir(), 'lockstep-cli-')),
    isTty: false,
    interrupted: new Promise(() => {}),
    ...over,
  };
  return { io: value, out: () => out.join(''), err: () => err.join('') };
}

const calls: Array<[string, unknown[]]> = [];
const spy: CommandHandlers = Object.fromEntries(
  Object.keys(defaultHandlers).map((k) => [
    k,
    async (_ctx: unknown, ...args: unknown[]) => {
      calls.push([k, args]);
      return 0;
    },
  ]),
) as unknown as CommandHandlers;

describe('lockstep CLI arguments', () => {
  it.each([
    { case: 'an unknown command', argv: ['rotat', 'x'], err: /unknown command 'rotat'/ },
    { case: 'an unknown option', argv: ['rotate', 'x', '--forse'], err: /unknown option '--forse'/ },
    { case: 'a missing argument', argv: ['rotate'], err: /missing required argument 'groupId'/ },
    {
      case: 'a missing required option',
      argv: ['group', 'apply'],
      err: /required option '-f, --file <file>' not specified/,
    },
    {
      case: 'a bad duration',
      argv: ['rotate', 'x', '--timeout', 'soon'],
      err: /flag --timeout: "soon" is not a duration/,
    },
    { case: 'a bad integer', argv: ['history', 'x', '--limit', '0'], err: /flag --limit: "0" is not an integer ≥ 1/ },
    { case: 'a bad role', argv: ['--role', 'root', 'status'], err: /Allowed choices are operator, auditor/ },
    { case: 'no command at all', argv: [], err: /Usage: lockstep/ },
  ])('exits 2 on $case', async ({ argv, err }) => {
    // Arrange
    const t = io();
    // Act
    const code = await runCli(argv, t.io, spy);
    // Assert
    expect(code).toBe(2);
    expect(t.err()).toMatch(err);
  });

  it('exits 0 on --help and --version', async () => {
    const t = io();
    expect(await runCli(['--help'], t.io, spy)).toBe(0);
    expect(t.out()).toMatch(/Where each setting comes from/);
    expect(t.out()).toMatch(/3 {2}verification failed/);
    expect(await runCli(['--version'], io().io, spy)).toBe(0);
  });

  it('passes parsed options to the handler', async () => {
    calls.length = 0;
    const code = await runCli(
      ['dev', '--fresh', '--data-dir', '/tmp/d', '--port-base', '0', '--rotation-min-interval', '90s'],
      io().io,
      spy,
    );
    expect(code).toBe(0);
    expect(calls[0]?.[0]).toBe('dev');
    expect(calls[0]?.[1][0]).toMatchObject({
      fresh: true,
      dataDir: '/tmp/d',
      portBase: 0,
      rotationMinIntervalMs: 90_000,
      demo: true,
    });
  });

  it('maps handler errors to exit codes and prints them (JSON on stderr with --json)', async () => {
    const failing = (e: unknown): CommandHandlers => ({ ...spy, plan: async () => Promise.reject(e) });
    const t1 = io();
    expect(await runCli(['plan', 'g'], t1.io, failing(new AppError('ROTATION_TOO_SOON', 'too soon')))).toBe(1);
    expect(t1.err()).toMatch(/error \[ROTATION_TOO_SOON\]: too soon\nhint: Key Protect allows one rotation/);
    const t2 = io();
    expect(await runCli(['--json', 'plan', 'g'], t2.io, failing(new AppError('CHAIN_BROKEN', 'gen 3 altered')))).toBe(
      3,
    );
    expect(JSON.parse(t2.err())).toEqual({ error: { code: 'CHAIN_BROKEN', message: 'gen 3 altered', exitCode: 3 } });
    expect(t2.out()).toBe('');
    const t3 = io();
    expect(await runCli(['plan', 'g'], t3.io, failing(new AppError('VALIDATION_FAILED', 'bad')))).toBe(2);
  });

  it('reports a bad config file with exit 2 before doing anything', async () => {
    const t = io();
    writeFileSync(join(t.io.cwd, 'lockstep.config.yaml'), 'api:\n  url: nope\n');
    const code = await runCli(['status'], t.io);
    expect(code).toBe(2);
    expect(t.err()).toMatch(/invalid api\.url from lockstep\.config\.yaml \(api\.url\): "nope" is not a URL/);
  });

  it('says how to start the stack when no API is configured', async () => {
    const t = io();
    expect(await runCli(['history', 'demo'], t.io)).toBe(2);
    expect(t.err()).toMatch(/no lockstep API URL configured/);
    expect(t.err()).toMatch(/npm start/);
  });

  it('drill: a missing API configuration is the only thing said (no progress line before it)', async () => {
    const t = io({ isTty: true });
    expect(await runCli(['drill', 'demo'], t.io)).toBe(2);
    expect(t.err()).toMatch(/no lockstep API URL configured/);
    expect(t.err()).not.toMatch(/drilling demo/);
  });

  it('exits 1 with a hint when the stack is unreachable', async () => {
    const t = io({
      env: { LOCKSTEP_API_URL: 'http://127.0.0.1:9', LOCKSTEP_IAM_URL: 'http://127.0.0.1:9', LOCKSTEP_API_KEY: 'k' },
    });
    expect(await runCli(['status'], t.io)).toBe(1);
    expect(t.err()).toMatch(/cannot reach http:\/\/127\.0\.0\.1:9/);
    expect(t.err()).toMatch(/is the stack running\?/);
  });

  it('shows where each configured value came from, without secrets', async () => {
    const t = io({ env: { LOCKSTEP_API_URL: 'http://127.0.0.1:4601', LOCKSTEP_API_KEY: 'super-secret-key' } });
    expect(await runCli(['--json', 'config'], t.io)).toBe(0);
    const doc = JSON.parse(t.out());
    expect(doc.values['api.url']).toEqual({ value: 'http://127.0.0.1:4601', source: 'env LOCKSTEP_API_URL' });
    expect(t.out()).not.toContain('super-secret-key');
  });

  it('validates groups files with positions and exit 2', async () => {
    const t = io();
    writeFileSync(
      join(t.io.cwd, 'g.yaml'),
      'groups:\n  - id: a\n    primary: us-south\n    duplicates: [us-east]\n    schedule: { every: 5m }\n',
    );
    const code = await runCli(['group', 'apply', '-f', 'g.yaml', '--dry-run'], t.io);
    expect(code).toBe(2);
    expect(t.err()).toMatch(/g\.yaml:5:17 {2}error {2}groups\[0\]\.schedule\.every: 5m is shorter than 1h/);
  });
});

describe('IBM SDK HTTP traces', () => {
  it.each([
    { env: { DEBUG: 'ibm-cloud-sdk-core:*' }, argv: ['plan', 'demo'] },
    {
      env: { NODE_DEBUG: 'axios' },
      argv: ['verify', 'demo'],
    },
    { env: { DEBUG: '*' }, argv: ['dev'] },
  ])('refuse $argv with $env before any Key Protect call (exit 2, naming the variable)', async ({ env, argv }) => {
    const t = io({ env });
    const code = await runCli(argv, t.io);
    expect(code).toBe(2);
    expect(t.err()).toMatch(/SDK HTTP traces/);
    expect(t.err()).toMatch(/DEBUG|NODE_DEBUG/);
  });
});

describe('ibmcloud habits', () => {
  it.each([[['--output', 'json']], [['-o', 'json']], [['--output', 'JSON']], [['-ojson']], [['--json']]])(
    '%j prints the one JSON document --json prints',
    async (flag: string[]) => {
      // Arrange
      const env = { LOCKSTEP_API_URL: 'http://127.0.0.1:4601', IBMCLOUD_REGION: 'eu-de' };
      const t = io({ env });
      // Act
      const code = await runCli([...flag, 'config'], t.io);
      // Assert
      expect(code).toBe(0);
      const doc = JSON.parse(t.out());
      expect(doc.values.region).toEqual({ value: 'eu-de', source: 'env IBMCLOUD_REGION' });
    },
  );

  it('prints errors raised while parsing options as JSON with -o json too', async () => {
    const t = io();
    expect(await runCli(['-o', 'json', 'rotate', 'x', '--timeout', 'soon'], t.io, spy)).toBe(2);
    expect(JSON.parse(t.err()).error.message).toMatch(/flag --timeout: "soon" is not a duration/);
    expect(wantsJson(['--output=JSON'])).toBe(true);
    expect(wantsJson(['-o', 'table'])).toBe(false);
  });

  it('refuses an output format it does not have (exit 2)', async () => {
    const t = io();
    expect(await runCli(['--output', 'yaml', 'config'], t.io, spy)).toBe(2);
    expect(t.err()).toMatch(/flag --output: "yaml" is not supported/);
  });

  it('IBMCLOUD_COLOR=false turns colours off on a terminal', async () => {
    const seen: string[] = [];
    const probe = {
      ...spy,
      config: async (ctx: { out: { green(s: string): string } }) => {
        seen.push(ctx.out.green('ok'));
        return 0;
      },
    };
    await runCli(['config'], io({ isTty: true }).io, probe as unknown as CommandHandlers);
    await runCli(
      ['config'],
      io({ isTty: true, env: { IBMCLOUD_COLOR: 'false' } }).io,
      probe as unknown as CommandHandlers,
    );
    await runCli(
      ['config'],
      io({ isTty: true, env: { IBMCLOUD_COLOR: 'true' } }).io,
      probe as unknown as CommandHandlers,
    );
    const ESC = String.fromCharCode(27);
    expect(seen.map((s) => s.includes(`${ESC}[`))).toEqual([true, false, true]);
    expect(seen[1]).toBe('ok');
  });

  it('group create takes the primary from IBMCLOUD_REGION when --primary is absent', async () => {
    calls.length = 0;
    const t = io({ env: { IBMCLOUD_REGION: 'us-south' } });
    expect(await runCli(['group', 'create', 'g1', '--duplicate', 'us-east', '--every', '30d'], t.io, spy)).toBe(0);
    expect(calls[0]?.[0]).toBe('groupCreate');
  });

  it('--help names the sources of every setting and every environment variable the CLI reads', async () => {
    const t = io();
    await runCli(['--help'], t.io, spy);
    const help = t.out();
    for (const s of SETTING_SOURCES) expect(help).toContain(s.setting);
    for (const v of Object.keys(ENV_VARS).filter((v) => !['LOCKSTEP_CONFIG', 'LOCKSTEP_DEV_FILE'].includes(v))) {
      expect(help, v).toContain(v);
    }
  });
});
