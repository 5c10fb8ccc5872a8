/**
 * Conformance of the emulator with the [C] rules of reference/key-protect-api.md: status, reason code and error
 * envelope, driven through IBM's SDK (raw HTTP only where the 0.1.2 SDK cannot express the call). One row per rule.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EmulatorStack, startEmulatorStack } from '../../../src/local/kp-emulator/index.js';
import { b64, expectKpError, json, keyBody, raw, type Sdk, sdkFor, seal } from './helpers.js';

let stack: EmulatorStack;
let sdk: Sdk;
let inst: string;
let url: string;
let bearer: string;

beforeAll(async () => {
  stack = await startEmulatorStack({ regions: ['eu-de'], tokenKeyPoolSize: 0, tokenKeyMaxUses: 4 });
  url = stack.kp.regions['eu-de']!.url;
  inst = stack.kp.regions['eu-de']!.instances[0]!;
  sdk = sdkFor(stack.iam, url);
  bearer = await stack.iam.issueToken('operator');
});
afterAll(async () => {
  await stack?.close();
});

type Res = { resources: Array<Record<string, unknown> & { id: string }> };
const first = (r: { result: unknown }) => (r.result as unknown as Res).resources[0]!;

async function rootKey(material: Buffer | null = randomBytes(32), extra: Record<string, unknown> = {}) {
  const body = keyBody({ name: 'k', ...(material ? { payload: b64(material) } : {}), ...extra });
  return first(await sdk.createKey({ bluemixInstance: inst, body })).id;
}
const standardKey = async () =>
  first(await sdk.createKey({ bluemixInstance: inst, body: keyBody({ name: 's', extractable: true }) })).id;
const rotate = (id: string, body?: unknown) =>
  sdk.rotateKey({ bluemixInstance: inst, id, ...(body ? { keyActionRotateBody: json(body) } : {}) });
const del = (id: string) => sdk.deleteKey({ bluemixInstance: inst, id });
const clock = (ms: number) => stack.kp.advanceClock(ms);
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

interface Row {
  rule: string;
  status: number;
  code: string;
  act: () => Promise<unknown>;
}

const rows: Row[] = [
  // §1.5/§1.6 bodies
  {
    rule: '§1.6 create without body → NO_BODY_ERR',
    status: 400,
    code: 'NO_BODY_ERR',
    act: async () => sdk.createKey({ bluemixInstance: inst, body: Buffer.alloc(0) }),
  },
  {
    rule: '§1.6 malformed JSON → BAD_BODY_ERR',
    status: 400,
    code: 'BAD_BODY_ERR',
    act: async () => sdk.createKey({ bluemixInstance: inst, body: Buffer.from('{"metadata":') }),
  },
  {
    rule: '§1.6 unknown field → BAD_BODY_ERR',
    status: 400,
    code: 'BAD_BODY_ERR',
    act: async () => sdk.createKey({ bluemixInstance: inst, body: keyBody({ name: 'x', attributes: {} }) }),
  },
  {
    rule: '§1.5 collectionTotal ≠ resources → COLLECTION_TOTAL_MISMATCH_ERR',
    status: 400,
    code: 'COLLECTION_TOTAL_MISMATCH_ERR',
    act: async () =>
      sdk.createKey({
        bluemixInstance: inst,
        body: json({
          metadata: { collectionType: 'application/vnd.ibm.kms.key+json', collectionTotal: 2 },
          resources: [{ name: 'x' }],
        }),
      }),
  },
  {
    rule: '§2.2 root key material must be 16/24/32 bytes',
    status: 400,
    code: 'INVALID_FIELD_ERR',
    act: async () => rootKey(randomBytes(20)),
  },
  {
    rule: '§2.1 at most 5 aliases per key',
    status: 400,
    code: 'KEY_ALIAS_QUOTA_ERR',
    act: async () => rootKey(null, { aliases: ['a1', 'a2', 'a3', 'a4', 'a5', 'a6'] }),
  },
  {
    rule: '§2.1 alias unique per instance',
    status: 409,
    code: 'KEY_ALIAS_NOT_UNIQUE_ERR',
    act: async () => {
      await rootKey(null, { aliases: ['shared-alias'] });
      return rootKey(null, { aliases: ['shared-alias'] });
    },
  },
  {
    rule: '§2.7 alias API: 6th alias refused',
    status: 400,
    code: 'KEY_ALIAS_QUOTA_ERR',
    act: async () => {
      const id = await rootKey(null, { aliases: ['b1', 'b2', 'b3', 'b4', 'b5'] });
      return sdk.createKeyAlias({ bluemixInstance: inst, id, alias: 'b6' });
    },
  },
  {
    rule: '§2.1 alias must not be reserved',
    status: 400,
    code: 'INVALID_FIELD_ERR',
    act: async () => rootKey(null, { aliases: ['versions'] }),
  },
  // §2.3 get
  {
    rule: '§2.3 unknown key → KEY_NOT_FOUND_ERR',
    status: 404,
    code: 'KEY_NOT_FOUND_ERR',
    act: async () => sdk.getKey({ bluemixInstance: inst, id: '0b8f2a0e-7a55-4cd4-9c0a-7b7c3d6a1f00' }),
  },
  // §4.5 rotate
  {
    rule: '§4.2 imported key rotate without payload → KEY_PAYLOAD_REQ_ERR',
    status: 400,
    code: 'KEY_PAYLOAD_REQ_ERR',
    act: async () => rotate(await rootKey()),
  },
  {
    rule: '§4.2 generated key rotate with payload → INVALID_QUERY_PARAM_ERR',
    status: 400,
    code: 'INVALID_QUERY_PARAM_ERR',
    act: async () => rotate(await rootKey(null), { payload: b64(randomBytes(32)) }),
  },
  {
    rule: '§4.2 second rotate within the hour → KEY_ROTATION_NOT_PERMITTED',
    status: 409,
    code: 'KEY_ROTATION_NOT_PERMITTED',
    act: async () => {
      const id = await rootKey(null);
      await rotate(id);
      return rotate(id);
    },
  },
  {
    rule: '§4.2 material size on rotate',
    status: 400,
    code: 'INVALID_FIELD_ERR',
    act: async () => rotate(await rootKey(), { payload: b64(randomBytes(31)) }),
  },
  {
    rule: '§4.5 rotate a standard key → KEY_ROOT_REQ_ERR',
    status: 400,
    code: 'KEY_ROOT_REQ_ERR',
    act: async () => rotate(await standardKey()),
  },
  {
    rule: '§2.4 rotate a suspended key → KEY_ACTION_INVALID_STATE_ERR',
    status: 409,
    code: 'KEY_ACTION_INVALID_STATE_ERR',
    act: async () => {
      const id = await rootKey(null);
      await sdk.disableKey({ bluemixInstance: inst, id });
      return rotate(id);
    },
  },
  {
    rule: '§4.5 rotate a deleted key → KEY_DELETED_ERR',
    status: 410,
    code: 'KEY_DELETED_ERR',
    act: async () => {
      const id = await rootKey(null);
      await del(id);
      return rotate(id);
    },
  },
  // §4.3 versions
  {
    rule: '§4.3 versions of a non-active key without allKeyStates → 409',
    status: 409,
    code: 'KEY_ACTION_INVALID_STATE_ERR',
    act: async () => {
      const id = await rootKey(null);
      await sdk.disableKey({ bluemixInstance: inst, id });
      return sdk.getKeyVersions({ bluemixInstance: inst, id });
    },
  },
  // §2.6 disable/enable
  {
    rule: '§2.6 disable a non-active key → KEY_ACTION_INVALID_STATE_ERR',
    status: 409,
    code: 'KEY_ACTION_INVALID_STATE_ERR',
    act: async () => {
      const id = await rootKey(null);
      await sdk.disableKey({ bluemixInstance: inst, id });
      return sdk.disableKey({ bluemixInstance: inst, id });
    },
  },
  {
    rule: '§2.6 enable within 30 s of disable → REQ_TOO_EARLY_ERR',
    status: 409,
    code: 'REQ_TOO_EARLY_ERR',
    act: async () => {
      const id = await rootKey(null);
      await sdk.disableKey({ bluemixInstance: inst, id });
      return sdk.enableKey({ bluemixInstance: inst, id });
    },
  },
  {
    rule: '§2.6 enable an active key → KEY_ACTION_INVALID_STATE_ERR',
    status: 409,
    code: 'KEY_ACTION_INVALID_STATE_ERR',
    act: async () => sdk.enableKey({ bluemixInstance: inst, id: await rootKey(null) }),
  },
  // §2.5 delete / restore / purge
  {
    rule: '§2.5 delete a deleted key → KEY_DELETED_ERR',
    status: 410,
    code: 'KEY_DELETED_ERR',
    act: async () => {
      const id = await rootKey(null);
      await del(id);
      return del(id);
    },
  },
  {
    rule: '§2.5 restore within 30 s of delete → REQ_TOO_EARLY_ERR',
    status: 409,
    code: 'REQ_TOO_EARLY_ERR',
    act: async () => {
      const id = await rootKey();
      await del(id);
      return sdk.restoreKey({ bluemixInstance: inst, id });
    },
  },
  {
    rule: '§2.5 restore after 30 days → KEY_RESTORE_EXPIRED',
    status: 400,
    code: 'KEY_RESTORE_EXPIRED',
    act: async () => {
      const id = await rootKey();
      await del(id);
      clock(31 * DAY);
      return sdk.restoreKey({ bluemixInstance: inst, id });
    },
  },
  {
    rule: '§2.5 restore an active key → KEY_ACTION_INVALID_STATE_ERR',
    status: 409,
    code: 'KEY_ACTION_INVALID_STATE_ERR',
    act: async () => sdk.restoreKey({ bluemixInstance: inst, id: await rootKey() }),
  },
  // §6 dual authorization
  {
    rule: '§6 setKeyForDeletion without dual-auth policy → NOT_DUAL_AUTH_ERR',
    status: 409,
    code: 'NOT_DUAL_AUTH_ERR',
    act: async () => sdk.setKeyForDeletion({ bluemixInstance: inst, id: await rootKey(null) }),
  },
  {
    rule: '§6 delete a dual-auth key without authorisation → AUTHORIZATIONS_NOT_MET',
    status: 409,
    code: 'AUTHORIZATIONS_NOT_MET',
    act: async () => {
      const id = await rootKey(null);
      await sdk.putPolicy({
        bluemixInstance: inst,
        id,
        policy: 'dualAuthDelete',
        setKeyPoliciesOneOf: {
          metadata: { collectionType: 'application/vnd.ibm.kms.policy+json', collectionTotal: 1 },
          resources: [{ type: 'application/vnd.ibm.kms.policy+json', dualAuthDelete: { enabled: true } }],
        } as never,
      });
      return del(id);
    },
  },
  // §4.4 key policies
  {
    rule: '§4.4 rotation policy on a standard key → KEY_ROOT_REQ_ERR',
    status: 400,
    code: 'KEY_ROOT_REQ_ERR',
    act: async () =>
      sdk.putPolicy({
        bluemixInstance: inst,
        id: await standardKey(),
        policy: 'rotation',
        setKeyPoliciesOneOf: {
          metadata: { collectionType: 'application/vnd.ibm.kms.policy+json', collectionTotal: 1 },
          resources: [{ type: 'application/vnd.ibm.kms.policy+json', rotation: { enabled: true, interval_month: 3 } }],
        } as never,
      }),
  },
  {
    rule: '§4.4 interval_month outside 1..12 → INVALID_FIELD_ERR',
    status: 400,
    code: 'INVALID_FIELD_ERR',
    act: async () =>
      sdk.putPolicy({
        bluemixInstance: inst,
        id: await rootKey(null),
        policy: 'rotation',
        setKeyPoliciesOneOf: {
          metadata: { collectionType: 'application/vnd.ibm.kms.policy+json', collectionTotal: 1 },
          resources: [{ type: 'application/vnd.ibm.kms.policy+json', rotation: { enabled: true, interval_month: 13 } }],
        } as never,
      }),
  },
  // §1.6 instance policies
  {
    rule: '§1.6 instance policy PUT with ?policy and 2 resources → NUM_COLLECTION_RESOURCE_ERR',
    status: 400,
    code: 'NUM_COLLECTION_RESOURCE_ERR',
    act: async () =>
      sdk.putInstancePolicy({
        bluemixInstance: inst,
        policy: 'dualAuthDelete',
        setInstancePoliciesOneOf: {
          metadata: { collectionType: 'application/vnd.ibm.kms.policy+json', collectionTotal: 2 },
          resources: [
            { policy_type: 'dualAuthDelete', policy_data: { enabled: false } },
            { policy_type: 'dualAuthDelete', policy_data: { enabled: false } },
          ],
        } as never,
      }),
  },
  // §5.1 wrap / unwrap
  {
    rule: '§5.1 wrap with bad base64 plaintext → INVALID_FIELD_ERR',
    status: 400,
    code: 'INVALID_FIELD_ERR',
    act: async () =>
      sdk.wrapKey({ bluemixInstance: inst, id: await rootKey(null), keyActionWrapBody: json({ plaintext: '***' }) }),
  },
  {
    rule: '§5.1 unwrap with bad base64 ciphertext → INVALID_FIELD_ERR',
    status: 400,
    code: 'INVALID_FIELD_ERR',
    act: async () =>
      sdk.unwrapKey({
        bluemixInstance: inst,
        id: await rootKey(null),
        keyActionUnwrapBody: json({ ciphertext: '%%%' }),
      }),
  },
  {
    rule: '§5.1 unwrap of corrupt ciphertext → UNPROCESSABLE_CIPHERTEXT_ERR',
    status: 422,
    code: 'UNPROCESSABLE_CIPHERTEXT_ERR',
    act: async () =>
      sdk.unwrapKey({
        bluemixInstance: inst,
        id: await rootKey(null),
        keyActionUnwrapBody: json({ ciphertext: b64(randomBytes(60)) }),
      }),
  },
  {
    rule: '§5.1 unwrap on a deleted key → 410 KEY_DELETED_ERR',
    status: 410,
    code: 'KEY_DELETED_ERR',
    act: async () => {
      const id = await rootKey(null);
      const w = (await sdk.wrapKey({ bluemixInstance: inst, id, keyActionWrapBody: json({}) })).result as {
        ciphertext: string;
      };
      await del(id);
      return sdk.unwrapKey({ bluemixInstance: inst, id, keyActionUnwrapBody: json({ ciphertext: w.ciphertext }) });
    },
  },
  {
    rule: '§2.4 wrap on a suspended key → KEY_ACTION_INVALID_STATE_ERR',
    status: 409,
    code: 'KEY_ACTION_INVALID_STATE_ERR',
    act: async () => {
      const id = await rootKey(null);
      await sdk.disableKey({ bluemixInstance: inst, id });
      return sdk.wrapKey({ bluemixInstance: inst, id, keyActionWrapBody: json({}) });
    },
  },
  // §3.1 import token parameters
  {
    rule: '§3.1 expiration below 300 s',
    status: 400,
    code: 'INVALID_FIELD_ERR',
    act: async () => sdk.postImportToken({ bluemixInstance: inst, expiration: 299 }),
  },
  {
    rule: '§3.1 expiration above 86400 s',
    status: 400,
    code: 'INVALID_FIELD_ERR',
    act: async () => sdk.postImportToken({ bluemixInstance: inst, expiration: 86401 }),
  },
  {
    rule: '§3.1 maxAllowedRetrievals above 500',
    status: 400,
    code: 'INVALID_FIELD_ERR',
    act: async () => sdk.postImportToken({ bluemixInstance: inst, maxAllowedRetrievals: 501 }),
  },
];

describe('Key Protect [C] rules (status, reason code, envelope)', () => {
  it.each(rows)('$rule', async (row) => {
    // Act + Assert
    await expectKpError(row.act(), row.status, row.code);
  });
});

describe('successful shapes', () => {
  it('§1.2 a call without a token gets 401 with no reasons', async () => {
    const r = await raw(url, '/keys', { instance: inst });
    expect(r.status).toBe(401);
    const res = (r.body as { resources: Array<Record<string, unknown>> }).resources[0]!;
    expect(res.errorMsg).toMatch(/^Unauthorized/);
    expect(res).not.toHaveProperty('reasons');
  });

  it('§2.5 delete → state 5, get still 200; restore after 30 s → 201; purge after 4 h → 200, then 404', async () => {
    const id = await rootKey();
    expect((await del(id)).status).toBe(204);
    const deleted = first(await sdk.getKey({ bluemixInstance: inst, id }));
    expect(deleted).toMatchObject({ state: 5, deleted: true });
    clock(31_000);
    const restored = await sdk.restoreKey({ bluemixInstance: inst, id });
    expect(restored.status).toBe(201);
    expect(first(await sdk.getKeyMetadata({ bluemixInstance: inst, id })).state).toBe(1);
    // purge
    const notDeleted = await raw(url, `/keys/${id}/purge`, { method: 'DELETE', token: bearer, instance: inst });
    expect(notDeleted.status).toBe(409);
    await del(id);
    const early = await raw(url, `/keys/${id}/purge`, { method: 'DELETE', token: bearer, instance: inst });
    expect(early.status).toBe(409);
    expect(JSON.stringify(early.body)).toContain('REQ_TOO_EARLY_ERR');
    clock(4 * HOUR);
    const purged = await raw(url, `/keys/${id}/purge`, { method: 'DELETE', token: bearer, instance: inst });
    expect(purged.status).toBe(200);
    await expectKpError(sdk.getKey({ bluemixInstance: inst, id }), 404, 'KEY_NOT_FOUND_ERR');
  });

  it('§2.6 enable 30 s after disable → 204', async () => {
    const id = await rootKey(null);
    expect((await sdk.disableKey({ bluemixInstance: inst, id })).status).toBe(204);
    clock(30_000);
    expect((await sdk.enableKey({ bluemixInstance: inst, id })).status).toBe(204);
  });

  it('§4.3 versions: allKeyStates for non-active keys, totalCount when asked', async () => {
    const id = await rootKey(null);
    await rotate(id);
    await sdk.disableKey({ bluemixInstance: inst, id });
    const r = await raw(url, `/keys/${id}/versions?allKeyStates=true&totalCount=true`, {
      token: bearer,
      instance: inst,
    });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({
      metadata: { collectionType: 'application/vnd.ibm.kms.key.version+json', collectionTotal: 2, totalCount: 2 },
    });
  });

  it('§2.3 list filters (state, extractable, limit/offset) and HEAD Key-Total', async () => {
    const own = await startEmulatorStack({ regions: ['jp-tok'] });
    try {
      const s = sdkFor(own.iam, own.kp.regions['jp-tok']!.url);
      const i = own.kp.regions['jp-tok']!.instances[0]!;
      const mk = async (extractable: boolean) =>
        first(await s.createKey({ bluemixInstance: i, body: keyBody({ name: 'l', extractable }) })).id;
      await mk(false);
      await mk(false);
      await mk(true);
      const gone = await mk(false);
      await s.deleteKey({ bluemixInstance: i, id: gone });
      const list = async (p: Record<string, unknown>) =>
        ((await s.getKeys({ bluemixInstance: i, ...p })).result as unknown as Res).resources.map((k) => k.id);
      expect(await list({})).toHaveLength(3); // destroyed keys only with state=5
      expect(await list({ state: [5] })).toEqual([gone]);
      expect(await list({ extractable: true })).toHaveLength(1);
      expect(await list({ limit: 2 })).toHaveLength(2);
      expect(await list({ offset: 2 })).toHaveLength(1);
      const head = await s.getKeyCollectionMetadata({ bluemixInstance: i });
      expect(head.headers['key-total']).toBe('3');
    } finally {
      await own.close();
    }
  });

  it('§1.3 leniency: no Content-Type and capitalised JSON keys; deprecated ?action=rotate', async () => {
    const id = await rootKey();
    const r = await raw(url, `/keys/${id}/actions/rotate`, {
      method: 'POST',
      token: bearer,
      instance: inst,
      body: JSON.stringify({ Payload: b64(randomBytes(16)) }),
    });
    expect(r.status).toBe(204);
    clock(HOUR);
    const legacy = await raw(url, `/keys/${id}?action=rotate`, {
      method: 'POST',
      token: bearer,
      instance: inst,
      headers: { 'content-type': 'application/vnd.ibm.kms.key_action+json' },
      body: JSON.stringify({ payload: b64(randomBytes(32)) }),
    });
    expect(legacy.status).toBe(204);
    const versions = await raw(url, `/keys/${id}/versions`, { token: bearer, instance: inst });
    expect((versions.body as Res).resources).toHaveLength(3);
  });

  it('§2.7 aliases: create, use in place of the id, delete', async () => {
    const id = await rootKey(null);
    const a = await sdk.createKeyAlias({ bluemixInstance: inst, id, alias: 'payments-crk' });
    expect([200, 201]).toContain(a.status);
    expect(first(a)).toMatchObject({ keyId: id, alias: 'payments-crk' });
    expect(first(await sdk.getKeyMetadata({ bluemixInstance: inst, id: 'payments-crk' })).id).toBe(id);
    expect((await sdk.deleteKeyAlias({ bluemixInstance: inst, id, alias: 'payments-crk' })).status).toBe(204);
    await expectKpError(sdk.getKey({ bluemixInstance: inst, id: 'payments-crk' }), 404, 'KEY_NOT_FOUND_ERR');
  });

  it('§2.7 key rings: create 201, list, create a key in it, delete 204', async () => {
    expect((await sdk.createKeyRing({ bluemixInstance: inst, keyRingId: 'ring-a' })).status).toBe(201);
    const rings = ((await sdk.listKeyRings({ bluemixInstance: inst })).result as unknown as Res).resources.map(
      (r) => r.id,
    );
    expect(rings).toEqual(expect.arrayContaining(['default', 'ring-a']));
    const k = first(
      await sdk.createKey({ bluemixInstance: inst, xKmsKeyRing: 'ring-a', body: keyBody({ name: 'r' }) } as never),
    );
    expect(k.keyRingID).toBe('ring-a');
    await del(k.id);
    // a ring holding (deleted) keys needs force=true, which the 0.1.2 SDK cannot send
    await expectKpError(
      sdk.deleteKeyRing({ bluemixInstance: inst, keyRingId: 'ring-a' }),
      409,
      'KEY_RING_KEYS_NOT_DELETED',
    );
    const forced = await raw(url, '/key_rings/ring-a?force=true', { method: 'DELETE', token: bearer, instance: inst });
    expect(forced.status).toBe(204);
    expect(first(await sdk.getKeyMetadata({ bluemixInstance: inst, id: k.id })).keyRingID).toBe('default');
  });

  it('§3.4 keyCreateImportAccess enforce_token: plain import and plain rotate refused (409 KEY_CREATE_IMPORT_ACCESS_ERR)', async () => {
    const id = await rootKey();
    const put = await sdk.putInstancePolicy({
      bluemixInstance: inst,
      policy: 'keyCreateImportAccess',
      setInstancePoliciesOneOf: {
        metadata: { collectionType: 'application/vnd.ibm.kms.policy+json', collectionTotal: 1 },
        resources: [
          { policy_type: 'keyCreateImportAccess', policy_data: { enabled: true, attributes: { enforce_token: true } } },
        ],
      } as never,
    });
    expect(put.status).toBe(204);
    const got = (await sdk.getInstancePolicy({ bluemixInstance: inst, policy: 'keyCreateImportAccess' })).result as {
      resources: Array<{ policy_type: string; policy_data: { enabled: boolean; attributes: Record<string, boolean> } }>;
    };
    expect(got.resources[0]).toMatchObject({
      policy_type: 'keyCreateImportAccess',
      policy_data: { enabled: true, attributes: { enforce_token: true } },
    });
    try {
      await expectKpError(rotate(id, { payload: b64(randomBytes(32)) }), 409, 'KEY_CREATE_IMPORT_ACCESS_ERR');
      await expectKpError(rootKey(), 409, 'KEY_CREATE_IMPORT_ACCESS_ERR');
      expect(await rootKey(null)).toBeTruthy(); // generated keys are unaffected
    } finally {
      await sdk.putInstancePolicy({
        bluemixInstance: inst,
        policy: 'keyCreateImportAccess',
        setInstancePoliciesOneOf: {
          metadata: { collectionType: 'application/vnd.ibm.kms.policy+json', collectionTotal: 1 },
          resources: [{ policy_type: 'keyCreateImportAccess', policy_data: { enabled: false } }],
        } as never,
      });
    }
  });

  it('§3 import token: retrievals count down, exhausted GET refused, nonce/IV checks, expiry (one RSA pair)', async () => {
    // Arrange
    const post = await sdk.postImportToken({ bluemixInstance: inst, expiration: 900, maxAllowedRetrievals: 2 });
    expect(post.result).toMatchObject({ maxAllowedRetrievals: 2, remainingRetrievals: 2 });
    expect(post.result).not.toHaveProperty('payload');
    const t1 = (await sdk.getImportToken({ bluemixInstance: inst })).result as {
      payload: string;
      nonce: string;
      remainingRetrievals: number;
    };
    const t2 = (await sdk.getImportToken({ bluemixInstance: inst })).result as {
      remainingRetrievals: number;
      nonce: string;
    };
    expect([t1.remainingRetrievals, t2.remainingRetrievals]).toEqual([1, 0]);
    expect(t2.nonce).toBe(t1.nonce);
    const exhausted = await kpStatus(sdk.getImportToken({ bluemixInstance: inst }));
    expect([404, 409]).toContain(exhausted); // [U] switch exhaustedTokenGetStatus
    // Act + Assert: INCORRECT_NONCE_IV_ERR (nonce sealed under other material)
    const material = randomBytes(32);
    const good = seal(t1, material);
    const other = seal(t1, randomBytes(32));
    await expectKpError(
      sdk.createKey({
        bluemixInstance: inst,
        body: keyBody({ name: 'x', ...good, encryptedNonce: other.encryptedNonce }),
      }),
      400,
      'INCORRECT_NONCE_IV_ERR',
    );
    // INCORRECT_NONCE_ERR: a different nonce, correctly sealed
    await expectKpError(
      sdk.createKey({
        bluemixInstance: inst,
        body: keyBody({ name: 'x', ...seal({ ...t1, nonce: b64(randomBytes(12)) }, material) }),
      }),
      400,
      'INCORRECT_NONCE_ERR',
    );
    // success, reusable until expiry; retrieval exhaustion does not block imports
    const ok = await sdk.createKey({ bluemixInstance: inst, body: keyBody({ name: 'sealed', ...good }) });
    expect(first(ok).imported).toBe(true);
    expect((await rotate(first(ok).id, seal(t1, randomBytes(16)))).status).toBe(204);
    // expired
    clock(901_000);
    await expectKpError(
      sdk.createKey({ bluemixInstance: inst, body: keyBody({ name: 'late', ...seal(t1, randomBytes(32)) }) }),
      409,
      'IMPORT_TOKEN_EXPIRED_ERR',
    );
  });
});

describe('tokenKeyMaxUses (test speed-up)', () => {
  it('reuses the RSA pair for the next token but with a new nonce; the old nonce is stale', async () => {
    await sdk.postImportToken({ bluemixInstance: inst, expiration: 600 });
    const a = (await sdk.getImportToken({ bluemixInstance: inst })).result as { payload: string; nonce: string };
    await sdk.postImportToken({ bluemixInstance: inst, expiration: 600 });
    const b = (await sdk.getImportToken({ bluemixInstance: inst })).result as { payload: string; nonce: string };
    expect(b.payload).toBe(a.payload);
    expect(b.nonce).not.toBe(a.nonce);
    await expectKpError(
      sdk.createKey({ bluemixInstance: inst, body: keyBody({ name: 'stale', ...seal(a, randomBytes(32)) }) }),
      400,
      'INCORRECT_NONCE_ERR',
    );
    const ok = await sdk.createKey({
      bluemixInstance: inst,
      body: keyBody({ name: 'fresh', ...seal(b, randomBytes(32)) }),
    });
    expect(ok.status).toBe(201);
  });
});

async function kpStatus(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return 0;
  } catch (err) {
    return (err as { status?: number }).status ?? -1;
  }
}
