/**
 * `lockstep check` in process against the local stand-ins (IAM, the Key Protect emulator with IAM roles, the
 * embedded store), as `npm start` serves them: the CLI reads a dev.json, probes every member and the escrow key over
 * the IBM SDK and names what is missing.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cryptoRandom, systemClock } from '../../../src/app/index.js';
import { runCli } from '../../../src/cli/cli.js';
import type { CliIo } from '../../../src/cli/context.js';
import type { Group, GroupId, InstanceId, Member, RegionId } from '../../../src/core/index.js';
import { authenticatorFromConfig, createKeyProtectClient } from '../../../src/keyprotect/index.js';
import { type EmbeddedCouch, startEmbeddedCouch } from '../../../src/local/couch/index.js';
import { type EmulatorStack, startEmulatorStack } from '../../../src/local/kp-emulator/index.js';
import { createCloudantStores } from '../../../src/store/index.js';
import { testTokenKeyPairs } from '../../support/tokenKeys.js';

const SOUTH = 'us-south' as RegionId;
const EAST = 'us-east' as RegionId;
let stack: EmulatorStack;
let couch: EmbeddedCouch;
let devFile: string;
let lockstepIamId: string;

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const io: CliIo = {
    stdout: (s) => {
      stdout += s;
    },
    stderr: (s) => {
      stderr += s;
    },
    env: { NO_COLOR: '1' },
    cwd: process.cwd(),
    isTty: false,
    interrupted: new Promise(() => undefined),
  };
  const code = await runCli(['--dev-file', devFile, ...args], io);
  return { code, stdout, stderr };
}

beforeAll(async () => {
  stack = await startEmulatorStack({ regions: [SOUTH, EAST], tokenKeyPairs: testTokenKeyPairs() });
  couch = await startEmbeddedCouch();
  const stores = await createCloudantStores({ ...couch.storeOptions });
  await stores.ensureSetup();
  const kp = createKeyProtectClient({
    endpoints: { [SOUTH]: stack.kp.regions[SOUTH]!.url, [EAST]: stack.kp.regions[EAST]!.url },
    authenticator: authenticatorFromConfig({
      kind: 'iam',
      apiKey: stack.iam.apiKeyFor('operator'),
      iamUrl: stack.iam.url,
    }),
    random: cryptoRandom,
    clock: systemClock,
  });
  const inst = (r: RegionId) => stack.kp.regions[r]!.instances[0] as InstanceId;
  const primary = await kp.createGeneratedRootKey({ region: SOUTH, instanceId: inst(SOUTH), name: 'p' });
  const duplicate = await kp.createGeneratedRootKey({ region: EAST, instanceId: inst(EAST), name: 'd' });
  const escrow = await kp.createGeneratedRootKey({ region: SOUTH, instanceId: inst(SOUTH), name: 'escrow' });
  const member = (role: Member['role'], region: RegionId, k: typeof primary): Member => ({
    role,
    region,
    instanceId: inst(region),
    keyId: k.id,
    crn: k.crn,
    keyRingId: 'default',
  });
  const group: Group = {
    id: 'chk' as GroupId,
    name: 'check',
    members: [member('primary', SOUTH, primary), member('duplicate', EAST, duplicate)],
    escrow: { region: SOUTH, instanceId: inst(SOUTH), keyId: escrow.id, crn: escrow.crn },
    schedule: { intervalMs: 86_400_000 },
    status: 'healthy',
    currentGeneration: 1,
    createdAtMs: Date.now(),
    updatedAtMs: Date.now(),
  };
  await stores.groups.create(group);
  lockstepIamId = stack.iam.identities.find((i) => i.name === 'lockstep')!.iamId;
  const dir = mkdtempSync(join(tmpdir(), 'lockstep-check-'));
  devFile = join(dir, 'dev.json');
  writeFileSync(
    devFile,
    JSON.stringify({
      iam: { url: stack.iam.url, apiKeys: { operator: stack.iam.apiKeyFor('lockstep'), auditor: 'x' } },
      keyProtect: Object.fromEntries(
        [SOUTH, EAST].map((r) => [r, { url: stack.kp.regions[r]!.url, instanceId: inst(r) }]),
      ),
      cloudant: { url: couch.url, ...couch.credentials },
      api: { url: 'http://127.0.0.1:9' },
      groups: ['chk'],
    }),
  );
});

afterAll(async () => {
  await stack?.close();
  await couch?.close();
});

describe('lockstep check', () => {
  it('names the missing Writer role on the duplicate instance and exits 3; passes once granted', async () => {
    // Arrange: Writer in us-south (member + escrow), only Reader in us-east.
    const south = stack.kp.regions[SOUTH]!.instances[0]!;
    const east = stack.kp.regions[EAST]!.instances[0]!;
    stack.kp.setAccess([
      { subject: lockstepIamId, instanceId: south, roles: ['Writer'] },
      { subject: lockstepIamId, instanceId: east, roles: ['Reader'] },
    ]);
    // Act
    const r = await cli('check', '--json');
    // Assert
    expect(r.code).toBe(3);
    const report = JSON.parse(r.stdout) as {
      ok: boolean;
      identity: { iamId: string };
      keys: {
        role: string;
        region: string;
        probes: Record<string, { ok?: boolean; missingRole?: string }>;
        missing: string[];
      }[];
    };
    expect(report.ok).toBe(false);
    expect(report.identity.iamId).toBe(lockstepIamId);
    const dup = report.keys.find((k) => k.role === 'duplicate')!;
    expect(dup.probes.read).toEqual({ ok: true });
    expect(dup.probes.wrapUnwrap).toEqual({ ok: true });
    expect(dup.probes.importToken).toMatchObject({ ok: false, missingRole: 'Writer' });
    expect(dup.missing.join('\n')).toMatch(/Writer role for importToken .*401/);
    for (const k of report.keys.filter((x) => x.role !== 'duplicate')) expect(k.missing).toEqual([]);
    expect(report.keys.map((k) => k.role).sort()).toEqual(['duplicate', 'escrow', 'primary']);

    // Human output by default
    const h = await cli('check');
    expect(h.code).toBe(3);
    expect(h.stdout).toContain('MISSING');
    expect(h.stdout).toContain(`identity: ${lockstepIamId}`);

    // Granted → exit 0
    stack.kp.setAccess([
      { subject: lockstepIamId, instanceId: south, roles: ['Writer'] },
      { subject: lockstepIamId, instanceId: east, roles: ['Writer'] },
    ]);
    const ok = await cli('check', '--json');
    expect(ok.code).toBe(0);
    expect((JSON.parse(ok.stdout) as { ok: boolean }).ok).toBe(true);
  });

  it('reports an identity with no role at all on every probe', async () => {
    stack.kp.setAccess([]);
    const r = await cli('check', 'chk', '--json');
    expect(r.code).toBe(3);
    const report = JSON.parse(r.stdout) as { keys: { missing: string[]; probes: Record<string, { ok?: boolean }> }[] };
    for (const k of report.keys) {
      expect(k.probes.read).toMatchObject({ ok: false });
      expect(k.missing.some((m) => m.startsWith('Reader role for read'))).toBe(true);
    }
  });
});
