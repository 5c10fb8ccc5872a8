/**
 * lockstep's Key Protect client against the emulator's access rules, over HTTP through IBM's SDK: the least role
 * each call needs, a diagnosed 401 (identity, instance, role — or the network policy), key rings sent as
 * X-Kms-Key-Ring, private endpoints, and reading a deactivated (expired) member.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { KeyInfo, KeyRef } from '../../../src/app/index.js';
import { cryptoRandom, systemClock } from '../../../src/app/index.js';
import { readMemberState } from '../../../src/app/runner.js';
import type { InstanceId, RegionId } from '../../../src/core/index.js';
import {
  authenticatorFromConfig,
  createKeyProtectClient,
  type KeyProtectClient,
} from '../../../src/keyprotect/index.js';
import { memberStateProblem } from '../../../src/rotation/index.js';
import { type ClientStack, newMaterial, startClientStack } from './support.js';

const SOUTH = 'us-south' as RegionId;

describe('Key Protect client ⇄ emulator access rules', () => {
  let cs: ClientStack;
  let kp: KeyProtectClient;
  let inst: InstanceId;
  let lockstepId: string;
  const secrets: string[] = [];

  beforeAll(async () => {
    cs = await startClientStack([SOUTH]);
    kp = cs.kp as KeyProtectClient;
    inst = cs.instance(SOUTH);
    lockstepId = cs.stack.iam.identities.find((i) => i.name === 'lockstep')!.iamId;
  });
  afterAll(async () => {
    await cs?.close();
  });
  beforeEach(() => cs.stack.kp.setAccess(undefined));

  const ref = (k: KeyInfo, keyRingId?: string): KeyRef => ({
    region: SOUTH,
    instanceId: inst,
    keyId: k.id,
    ...(keyRingId ? { keyRingId } : {}),
  });

  it('reads a key with Reader only (key metadata, not "retrieve a key") and wraps with it', async () => {
    // Arrange
    const key = await kp.createGeneratedRootKey({ region: SOUTH, instanceId: inst, name: 'reader-probe' });
    cs.stack.kp.setAccess([{ subject: lockstepId, instanceId: inst, roles: ['Reader'] }]);
    // Act
    const info = await kp.getKey(ref(key));
    const versions = await kp.listVersions(ref(key));
    const w = await kp.wrap(ref(key), Buffer.alloc(32, 1), ['a']);
    // Assert
    expect(info.id).toBe(key.id);
    expect(info.keyRingId).toBe('default');
    expect(versions).toHaveLength(1);
    expect(w.keyVersionId).toBe(info.currentVersionId);
  });

  it('diagnoses a 401 as a missing role of this identity on this instance, naming the role the call needs', async () => {
    // Arrange
    const key = await kp.createImportedKey({
      region: SOUTH,
      instanceId: inst,
      name: 'writer-needed',
      material: newMaterial(secrets).material,
    });
    cs.stack.kp.setAccess([{ subject: lockstepId, instanceId: inst, roles: ['Reader'] }]);
    // Act
    const err = await kp.rotateWithMaterial(ref(key), newMaterial(secrets).material).then(
      () => undefined,
      (e: unknown) => e,
    );
    // Assert
    expect(err).toMatchObject({
      code: 'UNAUTHENTICATED',
      details: {
        status: 401,
        operation: 'postImportToken',
        instanceId: inst,
        requiredRole: 'Writer',
        diagnosis: 'no_role_or_network',
      },
    });
    const message = (err as Error).message;
    expect(message).toContain(`identity ${lockstepId} (lockstep) lacks a Key Protect role on instance ${inst}`);
    expect(message).toContain('needs Writer');
    expect(message).toContain('network policy');
    expect(message).not.toMatch(/check the API key/);
    expect(await kp.identity()).toEqual({ iamId: lockstepId, name: 'lockstep' });
  });

  it('creates in a key ring and sends X-Kms-Key-Ring on every later call; a ring-scoped Writer is enough', async () => {
    // Arrange
    const admin = createKeyProtectClient({
      endpoints: { [SOUTH]: cs.stack.kp.regions[SOUTH]!.url },
      authenticator: authenticatorFromConfig({
        kind: 'iam',
        apiKey: cs.stack.iam.apiKeyFor('operator'),
        iamUrl: cs.stack.iam.url,
      }),
      random: cryptoRandom,
      clock: systemClock,
    });
    const ringRes = await fetch(`${cs.stack.kp.regions[SOUTH]!.url}/api/v2/key_rings/team-x`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await cs.stack.iam.issueToken('operator')}`, 'bluemix-instance': inst },
    });
    expect(ringRes.status).toBe(201);
    cs.stack.kp.setAccess([
      { subject: lockstepId, instanceId: inst, keyRingId: 'team-x', roles: ['Writer'] },
      { subject: 'operator', instanceId: '*', roles: ['Manager'] },
    ]);
    // Act: secure import into the ring (import token for the ring), then a rotation and a canary
    const key = await kp.createImportedKey({
      region: SOUTH,
      instanceId: inst,
      name: 'in-ring',
      material: newMaterial(secrets).material,
      keyRingId: 'team-x',
    });
    await kp.rotateWithMaterial({ region: SOUTH, instanceId: inst, keyId: key.id }, newMaterial(secrets).material);
    const w = await kp.wrap({ region: SOUTH, instanceId: inst, keyId: key.id }, Buffer.alloc(32, 2), ['r']);
    // Assert
    expect(key.keyRingId).toBe('team-x');
    const events = cs.stack.kp.events({ targetCrn: key.crn });
    for (const action of ['kms.secrets.rotate', 'kms.secrets.wrap']) {
      expect(events.find((e) => e.action === action)?.requestData.keyRingId).toBe('team-x');
    }
    expect(w.ciphertext).toBeTruthy();
    // A key outside the ring is refused; a wrong ring named for the key is "not found in key ring".
    const outside = await admin.createGeneratedRootKey({ region: SOUTH, instanceId: inst, name: 'outside' });
    await expect(kp.getKey(ref(outside))).rejects.toMatchObject({
      code: 'UNAUTHENTICATED',
      details: { requiredRole: 'Reader' },
    });
    await expect(admin.getKey(ref(key, 'default'))).rejects.toMatchObject({
      code: 'KEY_NOT_FOUND',
      details: { keyRingId: 'default' },
      message: expect.stringContaining('does not exist in key ring default'),
    });
  });

  it('reaches a private-only instance only through the private endpoint; the public one is diagnosed', async () => {
    // Arrange
    const priv = cs.stack.kp.createInstance(SOUTH, undefined, { allowedNetwork: 'private-only' }) as InstanceId;
    const client = (url: string) =>
      createKeyProtectClient({
        endpoints: { [SOUTH]: url },
        authenticator: authenticatorFromConfig({
          kind: 'iam',
          apiKey: cs.stack.iam.apiKeyFor('lockstep'),
          iamUrl: cs.stack.iam.url,
        }),
        random: cryptoRandom,
        clock: systemClock,
      });
    // Act / Assert
    await expect(
      client(cs.stack.kp.regions[SOUTH]!.url).createGeneratedRootKey({ region: SOUTH, instanceId: priv, name: 'p' }),
    ).rejects.toThrow(/network policy refuses this endpoint/);
    const key = await client(cs.stack.kp.regions[SOUTH]!.privateUrl).createGeneratedRootKey({
      region: SOUTH,
      instanceId: priv,
      name: 'p',
    });
    expect(key.state).toBe(1);
  });

  it('reads a deactivated (expired) member: state 3 and its versions, and lockstep names why it will not rotate it', async () => {
    // Arrange: an imported key that expires in an hour
    const token = await cs.stack.iam.issueToken('operator');
    const expires = new Date(cs.stack.kp.nowMs() + 3_600_000).toISOString().replace(/\.\d{3}Z$/, 'Z');
    const res = await fetch(`${cs.stack.kp.regions[SOUTH]!.url}/api/v2/keys`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'bluemix-instance': inst },
      body: JSON.stringify({
        metadata: { collectionType: 'application/vnd.ibm.kms.key+json', collectionTotal: 1 },
        resources: [{ name: 'expiring', extractable: false, expirationDate: expires }],
      }),
    });
    const id = ((await res.json()) as { resources: { id: string }[] }).resources[0]!.id;
    cs.stack.kp.advanceClock(3_600_000 + 1_000);
    // Act
    const reading = await readMemberState(kp, { region: SOUTH, instanceId: inst, keyId: id as never }, 'm');
    // Assert
    expect(reading).toMatchObject({ state: 3, deleted: false, versionCount: 1 });
    const info = await kp.getKey({ region: SOUTH, instanceId: inst, keyId: id as never });
    expect(info.expirationAtMs).toBe(Date.parse(expires));
    expect(memberStateProblem(reading.state, reading.deleted)).toMatch(/deactivated .*does not rotate/);
    expect(cs.stack.kp.events({ action: 'kms.secrets.expire' }).some((e) => e.target.id.endsWith(id))).toBe(true);
  });
});
