/**
 * Trust boundaries (issue 13, finding 5): key material in logs outside the functions. The IBM SDK's HTTP traces
 * (`DEBUG=ibm-cloud-sdk-core*`, `NODE_DEBUG=axios`) print request and response bodies — Key Protect `plaintext`
 * (canary DEKs, escrowed material coming back) and import-token nonces. Every process that talks to Key Protect must
 * refuse to run with them on, not only the functions: the CLI's `group create` (Key Protect directly) and the dev
 * stack (`lockstep dev`) are started as child processes with the traces on, against a real emulator and store, and
 * their whole output is searched; then the dev stack runs at `LOCKSTEP_LOG_LEVEL=debug` (traces off) through the demo
 * group's creation (material generated, escrowed, unwrapped) and its output is searched the same way.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EmbeddedCouch, startEmbeddedCouch } from '../../src/local/couch/index.js';
import { type EmulatorStack, startEmulatorStack } from '../../src/local/kp-emulator/index.js';
import { testTokenKeyPairs } from '../support/tokenKeys.js';
import { recordScenario } from './_lib/report.js';

const ROOT = resolve(import.meta.dirname, '../..');
const BIN = join(ROOT, 'bin/lockstep.js');
const REGIONS = ['us-south', 'us-east'];
const dir = mkdtempSync(join(tmpdir(), 'lockstep-debug-guard-'));

/** What an SDK trace or a logged secret looks like in any output. */
const LEAKS: Array<[string, RegExp]> = [
  ['SDK HTTP trace', /(-->|<--) HTTP (Request|Response|Error)/],
  ['a "plaintext" value', /\\?"plaintext\\?"\s*:\s*\\?"[A-Za-z0-9+/=_-]{8,}/],
  ['a "nonce" value', /\\?"(nonce|encryptedNonce)\\?"\s*:\s*\\?"[A-Za-z0-9+/=_-]{8,}/],
  ['a "payload" value', /\\?"payload\\?"\s*:\s*\\?"[A-Za-z0-9+/=_-]{16,}/],
];

let emu: EmulatorStack;
let couch: EmbeddedCouch;

beforeAll(async () => {
  emu = await startEmulatorStack({ regions: REGIONS, instancesPerRegion: 1, tokenKeyPairs: testTokenKeyPairs() });
  couch = await startEmbeddedCouch();
}, 60_000);

afterAll(async () => {
  await couch?.close();
  await emu?.close();
  rmSync(dir, { recursive: true, force: true });
});

interface Run {
  code: number | null;
  output: string;
}

/** Runs `lockstep <args>` with `env`; stops it when `until(output)` holds or after `timeoutMs`. */
function lockstep(args: string[], env: Record<string, string>, timeoutMs: number, until?: () => boolean): Promise<Run> {
  return new Promise((done, fail) => {
    const child: ChildProcess = spawn(process.execPath, [BIN, ...args], {
      cwd: dir,
      env: { PATH: process.env.PATH ?? '', HOME: dir, NO_COLOR: '1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout?.on('data', (d) => {
      output += d;
    });
    child.stderr?.on('data', (d) => {
      output += d;
    });
    const stop = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    const poll = setInterval(() => {
      if (until?.()) child.kill('SIGKILL');
    }, 250);
    child.on('error', fail);
    child.on('close', (code) => {
      clearTimeout(stop);
      clearInterval(poll);
      done({ code, output });
    });
  });
}

function leaksIn(what: string, output: string): string[] {
  return LEAKS.filter(([, re]) => re.test(output)).map(([name]) => `${what}: ${name} in the output`);
}

describe('trust boundaries: SDK traces in every process that talks to Key Protect', () => {
  it('the CLI and the dev stack refuse the IBM SDK HTTP traces; the dev stack at debug level logs no material', async () => {
    const violations: string[] = [];
    let processes = 0;
    const cliEnv = {
      LOCKSTEP_KP_ENDPOINTS: REGIONS.map((r) => `${r}=${emu.kp.regions[r]!.url}`).join(','),
      LOCKSTEP_KP_INSTANCES: REGIONS.map((r) => `${r}=${emu.kp.regions[r]!.instances[0]}`).join(','),
      CLOUDANT_URL: couch.url,
      LOCKSTEP_IAM_URL: emu.iam.url,
      LOCKSTEP_API_KEY: emu.iam.apiKeyFor('lockstep'),
    };
    const traces: Record<string, string>[] = [
      { DEBUG: 'ibm-cloud-sdk-core*' },
      { DEBUG: 'ibm-cloud-sdk-core:debug' },
      { NODE_DEBUG: 'axios' },
    ];
    for (const [i, trace] of traces.entries()) {
      const what = `lockstep group create with ${JSON.stringify(trace)}`;
      const r = await lockstep(
        [
          '--json',
          'group',
          'create',
          `dbg-${i}`,
          '--primary',
          REGIONS[0]!,
          '--duplicate',
          REGIONS[1]!,
          '--every',
          '90d',
        ],
        { ...cliEnv, ...trace },
        60_000,
      );
      processes += 1;
      violations.push(...leaksIn(what, r.output));
      if (r.code !== 2 || !/SDK HTTP traces/.test(r.output)) {
        violations.push(`${what}: exit ${r.code}, not a refusal naming the SDK traces`);
      }
    }

    // the dev stack with the traces on (and debug logs): refused before anything starts
    const devFile = join(dir, 'dev-traced.json');
    const traced = await lockstep(
      ['dev', '--fresh', '--data-dir', join(dir, 'traced'), '--dev-file', devFile, '--port-base', '0', '--tick', '2s'],
      { DEBUG: 'ibm-cloud-sdk-core:*', LOCKSTEP_LOG_LEVEL: 'debug' },
      90_000,
      () => existsSync(devFile),
    );
    processes += 1;
    violations.push(...leaksIn('lockstep dev with DEBUG=ibm-cloud-sdk-core:*', traced.output));
    if (traced.code !== 2 || !/SDK HTTP traces/.test(traced.output)) {
      violations.push(`lockstep dev with DEBUG=ibm-cloud-sdk-core:*: exit ${traced.code}, not a refusal`);
    }

    // the dev stack at LOCKSTEP_LOG_LEVEL=debug (traces off): through the demo group's creation, nothing leaks
    const debugFile = join(dir, 'dev-debug.json');
    const debug = await lockstep(
      ['dev', '--fresh', '--data-dir', join(dir, 'debug'), '--dev-file', debugFile, '--port-base', '0', '--tick', '2s'],
      { LOCKSTEP_LOG_LEVEL: 'debug' },
      90_000,
      () => existsSync(debugFile),
    );
    processes += 1;
    if (!existsSync(debugFile))
      violations.push(`lockstep dev at debug level did not start: ${debug.output.slice(-300)}`);
    if (!/"level":"debug"/.test(debug.output)) violations.push('lockstep dev at debug level wrote no debug line');
    violations.push(...leaksIn('lockstep dev at LOCKSTEP_LOG_LEVEL=debug', debug.output));

    const result = recordScenario({
      scenario: 'SDK HTTP traces in the CLI and the dev stack',
      area: 'trust',
      runs: processes,
      violations: violations.length,
      notes: `\`lockstep group create\` × ${traces.length} trace settings (DEBUG=ibm-cloud-sdk-core*, …:debug, NODE_DEBUG=axios) and \`lockstep dev\` with DEBUG → exit 2 naming the variable, no trace, no plaintext/nonce/payload in the output; \`lockstep dev\` at LOCKSTEP_LOG_LEVEL=debug through the demo group's creation → no trace, no material field`,
      examples: [...new Set(violations)].slice(0, 8),
    });
    expect(result.violations, result.examples?.join('\n')).toBe(0);
  }, 300_000);
});
