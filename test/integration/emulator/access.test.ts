/**
 * The emulator's access rules over HTTP through IBM's SDK: IAM service roles per identity (instance or key ring,
 * manage-access.md), 401 without reasons for a missing role, key-ring scoping, the `private-only` network policy
 * against public and private endpoints, expiry (`kms.secrets.expire`, state 3, rotate still allowed, wrap refused)
 * and restore points.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type EmulatorStack, startEmulatorStack } from '../../../src/local/kp-emulator/index.js';
import { testTokenKeyPairs } from '../../support/tokenKeys.js';
import { b64, expectKpError, json, keyBody, kpError, raw, type Sdk, sdkFor } from './helpers.js';

const SOUTH = 'us-south';
let stack: EmulatorStack;
let url: string;
let privateUrl: string;
let inst: string;

beforeAll(async () => {
  stack = await startEmulatorStack({ regions: [SOUTH], tokenKeyPairs: testTokenKeyPairs() });
  url = stack.kp.regions[SOUTH]!.url;
  privateUrl = stack.kp.regions[SOUTH]!.privateUrl;
  inst = stack.kp.regions[SOUTH]!.instances[0]!;
});
afterAll(async () => {
  await stack?.close();
});
beforeEach(() => stack.kp.setAccess(undefined));

async function expect401(p: Promise<unknown>) {
  const e = await kpError(p);
  expect(e.status).toBe(401);
  expect(e.body.resources[0]?.errorMsg).toMatch(/^Unauthorized/);
  expect(e.body.resources[0]).not.toHaveProperty('reasons');
}

async function newKey(sdk: Sdk, ring?: string, extra: Record<string, unknown> = {}) {
  const r = await sdk.createKey({
    bluemixInstance: inst,
    body: keyBody({ name: 'k', ...extra }),
    ...(ring ? { xKmsKeyRing: ring } : {}),
  });
  return (r.result as { resources: { id: string; crn: string }[] }).resources[0]!;
}

const wrapBody = json({ plaintext: b64(Buffer.alloc(32, 7)) });

describe('IAM service roles (manage-access.md): 401 without reasons when the role is missing', () => {
  it('Reader reads metadata, versions and wraps; cannot retrieve the key, rotate, create or use import tokens', async () => {
    // Arrange
    const key = await newKey(sdkFor(stack.iam, url, 'operator'));
    stack.kp.setAccess([{ subject: 'auditor', instanceId: inst, roles: ['Reader'] }]);
    const reader = sdkFor(stack.iam, url, 'auditor');
    // Act / Assert
    await reader.getKeyMetadata({ id: key.id, bluemixInstance: inst });
    await reader.getKeyVersions({ id: key.id, bluemixInstance: inst });
    const w = await reader.wrapKey({ id: key.id, bluemixInstance: inst, keyActionWrapBody: wrapBody });
    await reader.unwrapKey({
      id: key.id,
      bluemixInstance: inst,
      keyActionUnwrapBody: json({ ciphertext: (w.result as { ciphertext: string }).ciphertext }),
    });
    await expect401(reader.getKey({ id: key.id, bluemixInstance: inst })); // needs ReaderPlus
    await expect401(reader.rotateKey({ id: key.id, bluemixInstance: inst }));
    await expect401(reader.createKey({ bluemixInstance: inst, body: keyBody({ name: 'x' }) }));
    await expect401(reader.postImportToken({ bluemixInstance: inst, expiration: 300 }));
    await expect401(reader.getImportToken({ bluemixInstance: inst }));
    // The refusal is audited: a failure event with reason 401, severity critical.
    const ev = stack.kp.events({ targetCrn: key.crn, action: 'kms.secrets.rotate' }).at(-1)!;
    expect(ev).toMatchObject({ outcome: 'failure', severity: 'critical', reason: { reasonCode: 401 } });
  });

  it('Writer rotates and creates import tokens but cannot disable or delete (Manager)', async () => {
    const key = await newKey(sdkFor(stack.iam, url, 'operator'));
    stack.kp.setAccess([{ subject: 'lockstep', instanceId: inst, roles: ['Writer'] }]);
    const writer = sdkFor(stack.iam, url, 'lockstep');
    await writer.rotateKey({ id: key.id, bluemixInstance: inst });
    await writer.getKey({ id: key.id, bluemixInstance: inst });
    await expect401(writer.disableKey({ id: key.id, bluemixInstance: inst }));
    await expect401(writer.deleteKey({ id: key.id, bluemixInstance: inst }));
    await expect401(writer.getInstancePolicy({ bluemixInstance: inst }));
  });

  it('an identity without any grant is refused everything; grants on another instance do not count', async () => {
    stack.kp.setAccess([
      { subject: 'outsider', instanceId: '00000000-0000-4000-8000-000000000000', roles: ['Manager'] },
    ]);
    const outsider = sdkFor(stack.iam, url, 'outsider');
    await expect401(outsider.getKeys({ bluemixInstance: inst }));
    stack.kp.setAccess([{ subject: 'outsider', instanceId: '*', roles: ['Reader'] }]);
    await outsider.getKeys({ bluemixInstance: inst });
  });

  it('the admin API sets and reads grants; bad grants are refused', async () => {
    const put = await fetch(`${stack.kp.adminUrl}/__emulator/access`, {
      method: 'PUT',
      body: JSON.stringify({ grants: [{ subject: 'auditor', instanceId: inst, roles: ['Reader'] }] }),
    });
    expect(put.status).toBe(200);
    expect(stack.kp.access()).toEqual([{ subject: 'auditor', instanceId: inst, roles: ['Reader'] }]);
    const bad = await fetch(`${stack.kp.adminUrl}/__emulator/access`, {
      method: 'PUT',
      body: JSON.stringify({ grants: [{ subject: 'auditor', instanceId: inst, roles: ['Owner'] }] }),
    });
    expect(bad.status).toBe(400);
  });
});

describe('key rings: ring-scoped grants, X-Kms-Key-Ring', () => {
  it('a ring-scoped identity works in its ring (with or without the header) and is refused elsewhere', async () => {
    // Arrange
    const op = sdkFor(stack.iam, url, 'operator');
    await op.createKeyRing({ bluemixInstance: inst, keyRingId: 'team-a' }).catch(() => undefined);
    await op.createKeyRing({ bluemixInstance: inst, keyRingId: 'team-b' }).catch(() => undefined);
    const inRing = await newKey(op, 'team-a');
    const inDefault = await newKey(op);
    stack.kp.setAccess([
      { subject: 'lockstep', instanceId: inst, keyRingId: 'team-a', roles: ['Writer'] },
      { subject: 'auditor', instanceId: inst, roles: ['Reader'] },
    ]);
    const scoped = sdkFor(stack.iam, url, 'lockstep');
    // Act / Assert: in its ring
    await scoped.getKeyMetadata({ id: inRing.id, bluemixInstance: inst }); // ring looked up
    await scoped.rotateKey({ id: inRing.id, bluemixInstance: inst, xKmsKeyRing: 'team-a' });
    await newKey(scoped, 'team-a');
    await scoped.postImportToken({ bluemixInstance: inst, expiration: 300, xKmsKeyRing: 'team-a' });
    // elsewhere
    await expect401(scoped.getKeyMetadata({ id: inDefault.id, bluemixInstance: inst }));
    await expect401(scoped.createKey({ bluemixInstance: inst, body: keyBody({ name: 'x' }) })); // default ring
    await expect401(scoped.postImportToken({ bluemixInstance: inst, expiration: 300 })); // default ring
    await expect401(scoped.listKeyRings({ bluemixInstance: inst })); // needs the whole instance
    await expect401(scoped.getKeyMetadata({ id: inRing.id, bluemixInstance: inst, xKmsKeyRing: 'team-b' }));
    // A wrong ring named by someone who may read it: the key is not in that ring.
    const reader = sdkFor(stack.iam, url, 'auditor');
    await expectKpError(
      reader.getKeyMetadata({ id: inRing.id, bluemixInstance: inst, xKmsKeyRing: 'team-b' }),
      404,
      'KEY_NOT_FOUND_ERR',
    );
    // Lists with the header show only that ring.
    const list = await scoped.getKeys({ bluemixInstance: inst, xKmsKeyRing: 'team-a' });
    const ids = (list.result as { resources: { id: string }[] }).resources.map((k) => k.id);
    expect(ids).toContain(inRing.id);
    expect(ids).not.toContain(inDefault.id);
  });
});

describe('network policy: private-only instances answer only the private endpoint', () => {
  it('a private-only instance refuses the public endpoint (401) and serves the private one', async () => {
    // Arrange
    const id = stack.kp.createInstance(SOUTH, undefined, { allowedNetwork: 'private-only' });
    const pub = sdkFor(stack.iam, url, 'operator');
    const priv = sdkFor(stack.iam, privateUrl, 'operator');
    // Act / Assert
    await expect401(pub.getKeys({ bluemixInstance: id }));
    const r = await priv.createKey({ bluemixInstance: id, body: keyBody({ name: 'private' }) });
    expect(r.status).toBe(201);
    const ev = stack.kp
      .events({ action: 'kms.secrets.list' })
      .filter((e) => e.requestData.instanceID === id)
      .at(-1)!;
    expect(ev.reason.reasonCode).toBe(401);
    // at-events.md: no initiator address for private-network calls
    const created = stack.kp.events({ action: 'kms.secrets.create' }).at(-1)!;
    expect(created.initiator.host.address).toBe('');
  });

  it('setting allowedNetwork private-only through the API locks the public endpoint out; bad values are refused', async () => {
    const op = sdkFor(stack.iam, url, 'operator');
    const id = stack.kp.createInstance(SOUTH);
    const policy = (allowed_network: string) =>
      ({
        metadata: { collectionType: 'application/vnd.ibm.kms.policy+json', collectionTotal: 1 },
        resources: [{ policy_type: 'allowedNetwork', policy_data: { enabled: true, attributes: { allowed_network } } }],
      }) as never;
    await expectKpError(
      op.putInstancePolicy({
        bluemixInstance: id,
        policy: 'allowedNetwork',
        setInstancePoliciesOneOf: policy('everywhere'),
      }),
      400,
      'INVALID_FIELD_ERR',
    );
    await op.putInstancePolicy({
      bluemixInstance: id,
      policy: 'allowedNetwork',
      setInstancePoliciesOneOf: policy('private-only'),
    });
    await expect401(op.getKeys({ bluemixInstance: id }));
    await sdkFor(stack.iam, privateUrl, 'operator').getKeys({ bluemixInstance: id });
  });
});

describe('expiry (key-states.md): deactivated within the hour, kms.secrets.expire', () => {
  it('emits kms.secrets.expire once, reports state 3, refuses wrap, still rotates and lists versions with allKeyStates', async () => {
    // Arrange
    const op = sdkFor(stack.iam, url, 'operator');
    const expires = new Date(stack.kp.nowMs() + 3_600_000).toISOString().replace(/\.\d{3}Z$/, 'Z');
    const key = await newKey(op, undefined, { expirationDate: expires });
    expect(stack.kp.events({ action: 'kms.secrets.expire', targetCrn: key.crn })).toHaveLength(0);
    // Act
    stack.kp.advanceClock(3_600_000 + 1_000);
    // Assert
    const expired = stack.kp.events({ action: 'kms.secrets.expire', targetCrn: key.crn });
    expect(expired).toHaveLength(1);
    expect(expired[0]).toMatchObject({ outcome: 'success', responseData: { keyState: 3 } });
    const meta = await op.getKeyMetadata({ id: key.id, bluemixInstance: inst });
    expect((meta.result as { resources: { state: number }[] }).resources[0]!.state).toBe(3);
    await expectKpError(
      op.wrapKey({ id: key.id, bluemixInstance: inst, keyActionWrapBody: wrapBody }),
      400,
      'KEY_EXPIRED_ERR',
    );
    await op.rotateKey({ id: key.id, bluemixInstance: inst }); // key-states.md: rotate allowed when deactivated
    await expectKpError(op.getKeyVersions({ id: key.id, bluemixInstance: inst }), 409, 'KEY_ACTION_INVALID_STATE_ERR');
    const all = await raw(url, `/keys/${key.id}/versions?allKeyStates=true`, {
      token: await stack.iam.issueToken('operator'),
      instance: inst,
    });
    expect((all.body as { resources: unknown[] }).resources).toHaveLength(2);
    stack.kp.advanceClock(1_000);
    expect(stack.kp.events({ action: 'kms.secrets.expire', targetCrn: key.crn })).toHaveLength(1); // once
  });
});

describe('restore points (a recovery that lost recent writes)', () => {
  it('puts keys, versions and policies of one instance back; the admin routes answer 201 {snapshotId} and 204', async () => {
    // Arrange
    const op = sdkFor(stack.iam, url, 'operator');
    const id = stack.kp.createInstance(SOUTH);
    const key = (
      (await op.createKey({ bluemixInstance: id, body: keyBody({ name: 'r' }) })).result as {
        resources: { id: string }[];
      }
    ).resources[0]!;
    const snap = await fetch(`${stack.kp.adminUrl}/__emulator/snapshots`, {
      method: 'POST',
      body: JSON.stringify({ region: SOUTH, instanceId: id }),
    });
    expect(snap.status).toBe(201);
    const { snapshotId } = (await snap.json()) as { snapshotId: string };
    // later writes: a rotation, a new key, a policy
    await op.rotateKey({ id: key.id, bluemixInstance: id });
    const later = (
      (await op.createKey({ bluemixInstance: id, body: keyBody({ name: 'later' }) })).result as {
        resources: { id: string }[];
      }
    ).resources[0]!;
    await op.putInstancePolicy({
      bluemixInstance: id,
      policy: 'dualAuthDelete',
      setInstancePoliciesOneOf: {
        metadata: { collectionType: 'application/vnd.ibm.kms.policy+json', collectionTotal: 1 },
        resources: [{ policy_type: 'dualAuthDelete', policy_data: { enabled: true } }],
      } as never,
    });
    // Act
    const restored = await fetch(`${stack.kp.adminUrl}/__emulator/snapshots/${snapshotId}/restore`, { method: 'POST' });
    // Assert
    expect(restored.status).toBe(204);
    const versions = await op.getKeyVersions({ id: key.id, bluemixInstance: id });
    expect((versions.result as { resources: unknown[] }).resources).toHaveLength(1);
    await expectKpError(op.getKeyMetadata({ id: later.id, bluemixInstance: id }), 404, 'KEY_NOT_FOUND_ERR');
    const policies = await op.getInstancePolicy({ bluemixInstance: id });
    expect((policies.result as { resources: unknown[] }).resources).toHaveLength(0);
    // The same point can be restored again; an unknown one is 404.
    expect(
      (await fetch(`${stack.kp.adminUrl}/__emulator/snapshots/${snapshotId}/restore`, { method: 'POST' })).status,
    ).toBe(204);
    expect((await fetch(`${stack.kp.adminUrl}/__emulator/snapshots/nope/restore`, { method: 'POST' })).status).toBe(
      404,
    );
  });
});
