/**
 * Core flows through IBM's SDK: create/get/versions/rotate/wrap/unwrap, secure import with an import token,
 * cross-region unwrap with identical material, the 1 h rule and token expiry on the emulator clock.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EmulatorStack, startEmulatorStack } from '../../../src/local/kp-emulator/index.js';
import { testTokenKeyPairs } from '../../support/tokenKeys.js';
import { b64, expectKpError, json, keyBody, type Sdk, sdkFor, seal } from './helpers.js';

let stack: EmulatorStack;
let east: Sdk;
let south: Sdk;
let eastId: string;
let southId: string;

beforeAll(async () => {
  stack = await startEmulatorStack({ regions: ['us-east', 'us-south'], tokenKeyPairs: testTokenKeyPairs() });
  east = sdkFor(stack.iam, stack.kp.regions['us-east']!.url);
  south = sdkFor(stack.iam, stack.kp.regions['us-south']!.url);
  eastId = stack.kp.regions['us-east']!.instances[0]!;
  southId = stack.kp.regions['us-south']!.instances[0]!;
});
afterAll(async () => {
  await stack?.close();
});

async function importKey(sdk: Sdk, instance: string, material: Buffer, name = 'dup') {
  const r = await sdk.createKey({ bluemixInstance: instance, body: keyBody({ name, payload: b64(material) }) });
  expect(r.status).toBe(201);
  return (r.result as { resources: Array<{ id: string; keyVersion: { id: string }; imported: boolean }> })
    .resources[0]!;
}

async function versionsOf(sdk: Sdk, instance: string, id: string) {
  const r = await sdk.getKeyVersions({ bluemixInstance: instance, id });
  return (r.result as { resources: Array<{ id: string; creationDate: string }> }).resources;
}

async function wrap(sdk: Sdk, instance: string, id: string, dek: Buffer, aad?: string[]) {
  const r = await sdk.wrapKey({
    bluemixInstance: instance,
    id,
    keyActionWrapBody: json({ plaintext: b64(dek), ...(aad ? { aad } : {}) }),
  });
  return r.result as { ciphertext: string; keyVersion: { id: string } };
}

async function unwrap(sdk: Sdk, instance: string, id: string, ciphertext: string, aad?: string[]) {
  const r = await sdk.unwrapKey({
    bluemixInstance: instance,
    id,
    keyActionUnwrapBody: json({ ciphertext, ...(aad ? { aad } : {}) }),
  });
  return r.result as {
    plaintext: string;
    keyVersion: { id: string };
    ciphertext?: string;
    rewrappedKeyVersion?: { id: string };
  };
}

describe('keys, versions and rotation through the SDK', () => {
  it('creates an imported root key and reads it back by id and alias', async () => {
    // Arrange
    const material = randomBytes(32);
    const r = await east.createKey({
      bluemixInstance: eastId,
      body: keyBody({ name: 'orders-crk', aliases: ['orders-crk'], payload: b64(material) }),
    });
    const key = (r.result as { resources: Array<Record<string, unknown>> }).resources[0]!;
    // Act
    const byAlias = await east.getKey({ bluemixInstance: eastId, id: 'orders-crk' });
    // Assert
    expect(key).toMatchObject({
      imported: true,
      extractable: false,
      state: 1,
      keyRingID: 'default',
      name: 'orders-crk',
    });
    expect(key.crn).toBe(stack.kp.crnOf('us-east', eastId, key.id as string));
    expect(key).not.toHaveProperty('payload');
    const got = (byAlias.result as unknown as { resources: Array<Record<string, unknown>> }).resources[0]!;
    expect(got.id).toBe(key.id);
    expect(got).not.toHaveProperty('payload');
    expect(got).not.toHaveProperty('lastRotateDate');
  });

  it('rotates an imported key: 204 without body, new latest version newest first', async () => {
    const k = await importKey(east, eastId, randomBytes(32));
    const r = await east.rotateKey({
      bluemixInstance: eastId,
      id: k.id,
      keyActionRotateBody: json({ payload: b64(randomBytes(32)) }),
    });
    expect(r.status).toBe(204);
    expect(r.result).toBeFalsy();
    const versions = await versionsOf(east, eastId, k.id);
    expect(versions).toHaveLength(2);
    expect(versions[1]!.id).toBe(k.keyVersion.id);
    const meta = (await east.getKeyMetadata({ bluemixInstance: eastId, id: k.id })).result as {
      resources: Array<{ keyVersion: { id: string }; lastRotateDate?: string }>;
    };
    expect(meta.resources[0]!.keyVersion.id).toBe(versions[0]!.id);
    expect(meta.resources[0]!.lastRotateDate).toBeDefined();
  });

  it('enforces one rotation per hour on the emulator clock; the first rotation is free', async () => {
    const k = await importKey(east, eastId, randomBytes(32));
    await east.rotateKey({
      bluemixInstance: eastId,
      id: k.id,
      keyActionRotateBody: json({ payload: b64(randomBytes(32)) }),
    });
    await expectKpError(
      east.rotateKey({
        bluemixInstance: eastId,
        id: k.id,
        keyActionRotateBody: json({ payload: b64(randomBytes(32)) }),
      }),
      409,
      'KEY_ROTATION_NOT_PERMITTED',
    );
    stack.kp.advanceClock(stack.kp.rules().rotationMinIntervalMs);
    const again = await east.rotateKey({
      bluemixInstance: eastId,
      id: k.id,
      keyActionRotateBody: json({ payload: b64(randomBytes(32)) }),
    });
    expect(again.status).toBe(204);
    expect(await versionsOf(east, eastId, k.id)).toHaveLength(3);
  });

  it('rotates a generated key without a body and refuses a payload for it', async () => {
    const r = await east.createKey({ bluemixInstance: eastId, body: keyBody({ name: 'gen' }) });
    const id = (r.result as { resources: Array<{ id: string; imported: boolean }> }).resources[0]!;
    expect(id.imported).toBe(false);
    await expectKpError(
      east.rotateKey({
        bluemixInstance: eastId,
        id: id.id,
        keyActionRotateBody: json({ payload: b64(randomBytes(32)) }),
      }),
      400,
      'INVALID_QUERY_PARAM_ERR',
    );
    expect((await east.rotateKey({ bluemixInstance: eastId, id: id.id })).status).toBe(204);
  });
});

describe('wrap and unwrap across regions', () => {
  it('unwraps in another region whose key holds the same material; different material gives 422', async () => {
    const material = randomBytes(32);
    const a = await importKey(east, eastId, material);
    const b = await importKey(south, southId, material);
    const c = await importKey(south, southId, randomBytes(32));
    const dek = randomBytes(32);
    const w = await wrap(east, eastId, a.id, dek, ['tenant-1']);
    const u = await unwrap(south, southId, b.id, w.ciphertext, ['tenant-1']);
    expect(Buffer.from(u.plaintext, 'base64').equals(dek)).toBe(true);
    expect(u.keyVersion.id).toBe(b.keyVersion.id);
    expect(u.ciphertext).toBeUndefined();
    await expectKpError(
      south.unwrapKey({
        bluemixInstance: southId,
        id: c.id,
        keyActionUnwrapBody: json({ ciphertext: w.ciphertext, aad: ['tenant-1'] }),
      }),
      422,
      'UNPROCESSABLE_CIPHERTEXT_ERR',
    );
    // wrong AAD
    await expectKpError(
      south.unwrapKey({
        bluemixInstance: southId,
        id: b.id,
        keyActionUnwrapBody: json({ ciphertext: w.ciphertext, aad: ['tenant-2'] }),
      }),
      422,
      'UNPROCESSABLE_CIPHERTEXT_ERR',
    );
  });

  it('duplicates rotated to the same new material: old and new WDEKs unwrap in both regions with local version ids', async () => {
    // Arrange: generation 1 in both, a WDEK from each region under it
    const m1 = randomBytes(32);
    const m2 = randomBytes(32);
    const a = await importKey(east, eastId, m1);
    const b = await importKey(south, southId, m1);
    const oldFromSouth = await wrap(south, southId, b.id, Buffer.from('dek-1'));
    // Act: the duplicate first, then the primary (stage, promote)
    await south.rotateKey({ bluemixInstance: southId, id: b.id, keyActionRotateBody: json({ payload: b64(m2) }) });
    const newFromSouth = await wrap(south, southId, b.id, Buffer.from('dek-2'));
    // the primary has not rotated yet: it cannot read generation 2
    await expectKpError(
      east.unwrapKey({
        bluemixInstance: eastId,
        id: a.id,
        keyActionUnwrapBody: json({ ciphertext: newFromSouth.ciphertext }),
      }),
      422,
      'UNPROCESSABLE_CIPHERTEXT_ERR',
    );
    await east.rotateKey({ bluemixInstance: eastId, id: a.id, keyActionRotateBody: json({ payload: b64(m2) }) });
    // Assert
    const eastLatest = (await versionsOf(east, eastId, a.id))[0]!.id;
    const u1 = await unwrap(east, eastId, a.id, oldFromSouth.ciphertext);
    expect(Buffer.from(u1.plaintext, 'base64').toString()).toBe('dek-1');
    expect(u1.keyVersion.id).toBe(a.keyVersion.id);
    expect(u1.rewrappedKeyVersion?.id).toBe(eastLatest);
    const u2 = await unwrap(east, eastId, a.id, newFromSouth.ciphertext);
    expect(Buffer.from(u2.plaintext, 'base64').toString()).toBe('dek-2');
    expect(u2.keyVersion.id).toBe(eastLatest);
    expect(u2.keyVersion.id).not.toBe(newFromSouth.keyVersion.id); // version ids are per instance
    // the east rewrap of dek-1 is readable in the south
    const back = await unwrap(south, southId, b.id, u1.ciphertext!);
    expect(Buffer.from(back.plaintext, 'base64').toString()).toBe('dek-1');
  });

  it('unwrap of an older version returns the plaintext plus a ciphertext rewrapped under the latest', async () => {
    const k = await importKey(east, eastId, randomBytes(24));
    const dek = randomBytes(32);
    const w = await wrap(east, eastId, k.id, dek);
    expect(w.keyVersion.id).toBe(k.keyVersion.id);
    await east.rotateKey({
      bluemixInstance: eastId,
      id: k.id,
      keyActionRotateBody: json({ payload: b64(randomBytes(16)) }),
    });
    const latest = (await versionsOf(east, eastId, k.id))[0]!.id;
    const u = await unwrap(east, eastId, k.id, w.ciphertext);
    expect(Buffer.from(u.plaintext, 'base64').equals(dek)).toBe(true);
    expect(u.keyVersion.id).toBe(k.keyVersion.id);
    expect(u.rewrappedKeyVersion?.id).toBe(latest);
    const u2 = await unwrap(east, eastId, k.id, u.ciphertext!);
    expect(u2.keyVersion.id).toBe(latest);
    expect(u2.rewrappedKeyVersion).toBeUndefined();
    expect(Buffer.from(u2.plaintext, 'base64').equals(dek)).toBe(true);
    // only the latest version wraps
    expect((await wrap(east, eastId, k.id, dek)).keyVersion.id).toBe(latest);
  });
});

describe('secure import with an import token', () => {
  it('creates and rotates with sealed material; an overwritten token gives INCORRECT_NONCE_ERR; expiry on the clock', async () => {
    // Arrange: token with 3 retrievals
    const created = await south.postImportToken({ bluemixInstance: southId, expiration: 600, maxAllowedRetrievals: 3 });
    expect([200, 201]).toContain(created.status);
    expect(created.result).toMatchObject({ maxAllowedRetrievals: 3, remainingRetrievals: 3 });
    const token = (await south.getImportToken({ bluemixInstance: southId })).result as {
      payload: string;
      nonce: string;
      remainingRetrievals: number;
    };
    expect(token.remainingRetrievals).toBe(2);
    expect(Buffer.from(token.nonce, 'base64')).toHaveLength(12);
    expect(Buffer.from(token.payload, 'base64').toString()).toContain('-----BEGIN PUBLIC KEY-----');
    const m1 = randomBytes(32);
    // Act: create with the sealed material, then wrap here and unwrap in a plain-imported twin
    const r = await south.createKey({
      bluemixInstance: southId,
      body: keyBody({ name: 'sealed', ...seal(token, m1) }),
    });
    const sealed = (r.result as { resources: Array<{ id: string; imported: boolean }> }).resources[0]!;
    expect(sealed.imported).toBe(true);
    const twin = await importKey(east, eastId, m1);
    const w = await wrap(south, southId, sealed.id, randomBytes(32));
    await unwrap(east, eastId, twin.id, w.ciphertext);
    // a rotate with the same token
    const m2 = randomBytes(32);
    expect(
      (await south.rotateKey({ bluemixInstance: southId, id: sealed.id, keyActionRotateBody: json(seal(token, m2)) }))
        .status,
    ).toBe(204);
    // overwrite the token: the old nonce/public key is stale
    await south.postImportToken({ bluemixInstance: southId, expiration: 300, maxAllowedRetrievals: 1 });
    await expectKpError(
      south.createKey({ bluemixInstance: southId, body: keyBody({ name: 'stale', ...seal(token, randomBytes(32)) }) }),
      400,
      'INCORRECT_NONCE_ERR',
    );
    // expiry: the new token dies after 300 s of emulator time
    const fresh = (await south.getImportToken({ bluemixInstance: southId })).result as {
      payload: string;
      nonce: string;
    };
    stack.kp.advanceClock(301_000);
    await expectKpError(
      south.createKey({ bluemixInstance: southId, body: keyBody({ name: 'late', ...seal(fresh, randomBytes(32)) }) }),
      409,
      'IMPORT_TOKEN_EXPIRED_ERR',
    );
    await expectKpError(south.getImportToken({ bluemixInstance: southId }), 409, 'IMPORT_TOKEN_EXPIRED_ERR');
  });
});
