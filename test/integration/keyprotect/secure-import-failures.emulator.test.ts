/**
 * Secure-import failures over real HTTP: the emulator decides; a recording proxy tampers with the wire or acts
 * between GET /import_token and the create/rotate (as another worker or a slow step would). Each failure must be
 * the documented typed error and must leave the key unchanged.
 */
import { randomBytes } from 'node:crypto';
import KeyProtectV2 from '@ibm-cloud/ibm-key-protect/ibm-key-protect-api/v2.js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { KeyInfo, KeyProtectPort, KeyRef } from '../../../src/app/index.js';
import type { RegionId } from '../../../src/core/index.js';
import { authenticatorFromConfig } from '../../../src/keyprotect/index.js';
import {
  type ClientStack,
  flipBase64,
  HOUR_MS,
  newMaterial,
  rewriteJson,
  startClientStack,
  type TapProxy,
} from './support.js';

const SOUTH = 'us-south' as RegionId;
const ROTATE = /\/actions\/rotate$/;
const TOKEN = '/api/v2/import_token';
const TOKEN_PATH = /\/api\/v2\/import_token$/;

describe('secure import failures', () => {
  let cs: ClientStack;
  let kp: KeyProtectPort;
  let proxy: TapProxy;
  let key: KeyInfo;
  let ref: KeyRef;

  beforeAll(async () => {
    cs = await startClientStack([SOUTH]);
    kp = cs.kp;
    proxy = cs.proxies[SOUTH]!;
    // created without a token (saves an RSA-4096 token key); every rotation below uses secure import
    key = await cs.client({ useImportToken: false }).createImportedKey({
      region: SOUTH,
      instanceId: cs.instance(SOUTH),
      name: 'failures',
      material: newMaterial().material,
    });
    ref = cs.refOf(SOUTH, key);
  });

  afterEach(() => {
    proxy.hooks = {};
  });

  afterAll(async () => {
    await cs?.close();
  });

  /** Rotates with fresh material and returns the error; asserts nothing was applied. */
  async function failedRotation(): Promise<Record<string, unknown>> {
    const before = await kp.listVersions(ref);
    const rotatesBefore = proxy.count('POST', ROTATE);
    const err = await kp.rotateWithMaterial(ref, newMaterial().material).then(
      () => {
        throw new Error('rotation unexpectedly succeeded');
      },
      (e: unknown) => e as Record<string, unknown>,
    );
    expect(proxy.count('POST', ROTATE) - rotatesBefore).toBe(1); // sent once, never retried
    expect((await kp.listVersions(ref)).map((v) => v.id)).toEqual(before.map((v) => v.id));
    return err;
  }

  it('a tampered payload (one bit of the RSA-OAEP ciphertext flipped) is rejected: UPSTREAM_REJECTED', async () => {
    proxy.hooks.onRequest = ({ method, path, body }) =>
      method === 'POST' && ROTATE.test(path)
        ? rewriteJson(body, (j) => {
            j.payload = flipBase64(String(j.payload));
          })
        : undefined;
    const err = await failedRotation();
    expect(err).toMatchObject({
      code: 'UPSTREAM_REJECTED',
      retryable: false,
      details: { kpCode: 'INVALID_FIELD_ERR', status: 400, region: SOUTH, operation: 'rotate', ambiguous: false },
    });
  });

  it('a tampered encryptedNonce fails GCM authentication: IMPORT_TOKEN_NONCE_MISMATCH (INCORRECT_NONCE_IV_ERR)', async () => {
    proxy.hooks.onRequest = ({ method, path, body }) =>
      method === 'POST' && ROTATE.test(path)
        ? rewriteJson(body, (j) => {
            j.encryptedNonce = flipBase64(String(j.encryptedNonce));
          })
        : undefined;
    expect(await failedRotation()).toMatchObject({
      code: 'IMPORT_TOKEN_NONCE_MISMATCH',
      details: { kpCode: 'INCORRECT_NONCE_IV_ERR', status: 400, operation: 'rotate', ambiguous: false },
    });
  });

  it('a wrong nonce (the token read back altered) is refused: IMPORT_TOKEN_NONCE_MISMATCH (INCORRECT_NONCE_ERR)', async () => {
    proxy.hooks.onResponse = ({ method, path }, res) =>
      method === 'GET' && path === TOKEN && res.status === 200
        ? rewriteJson(res.body, (j) => {
            j.nonce = randomBytes(12).toString('base64');
          })
        : undefined;
    expect(await failedRotation()).toMatchObject({
      code: 'IMPORT_TOKEN_NONCE_MISMATCH',
      details: { kpCode: 'INCORRECT_NONCE_ERR', status: 400, operation: 'rotate' },
    });
  });

  it('an import token that expires between GET and rotate (emulator clock advanced): IMPORT_TOKEN_EXPIRED', async () => {
    proxy.hooks.onResponse = ({ method, path }, res) => {
      if (method === 'GET' && path === TOKEN && res.status === 200) cs.stack.kp.advanceClock(601_000);
      return undefined;
    };
    expect(await failedRotation()).toMatchObject({
      code: 'IMPORT_TOKEN_EXPIRED',
      retryable: false,
      details: { kpCode: 'IMPORT_TOKEN_EXPIRED_ERR', status: 409, operation: 'rotate' },
    });
  });

  it('a token overwritten by another worker between GET and rotate: IMPORT_TOKEN_NONCE_MISMATCH', async () => {
    // another worker, straight through the IBM SDK, creates a new token for the same instance
    const other = new KeyProtectV2({
      authenticator: authenticatorFromConfig({
        kind: 'iam',
        apiKey: cs.stack.iam.apiKeyFor('operator'),
        iamUrl: cs.stack.iam.url,
      }),
      serviceUrl: cs.stack.kp.regions[SOUTH]!.url,
    });
    proxy.hooks.onResponse = async ({ method, path }, res) => {
      if (method === 'GET' && path === TOKEN && res.status === 200) {
        await other.postImportToken({ bluemixInstance: cs.instance(SOUTH), expiration: 600 });
      }
      return undefined;
    };
    expect(await failedRotation()).toMatchObject({
      code: 'IMPORT_TOKEN_NONCE_MISMATCH',
      details: { kpCode: 'INCORRECT_NONCE_ERR', status: 400, operation: 'rotate', ambiguous: false },
    });
  });

  it('a token rejected on create leaves no key behind: IMPORT_TOKEN_NONCE_MISMATCH', async () => {
    proxy.hooks.onResponse = ({ method, path }, res) =>
      method === 'GET' && path === TOKEN && res.status === 200
        ? rewriteJson(res.body, (j) => {
            j.nonce = randomBytes(12).toString('base64');
          })
        : undefined;
    const creates = proxy.count('POST', /\/api\/v2\/keys$/);
    await expect(
      kp.createImportedKey({
        region: SOUTH,
        instanceId: cs.instance(SOUTH),
        name: 'never-created',
        material: newMaterial().material,
      }),
    ).rejects.toMatchObject({
      code: 'IMPORT_TOKEN_NONCE_MISMATCH',
      details: { kpCode: 'INCORRECT_NONCE_ERR', operation: 'createKey', ambiguous: false },
    });
    expect(proxy.count('POST', /\/api\/v2\/keys$/) - creates).toBe(1);
    expect(cs.stack.kp.events({ action: 'kms.secrets.create' }).filter((e) => e.outcome === 'success')).toHaveLength(1);
  });

  it('an import token whose public key is not RSA-2048+ is refused before anything is sent', async () => {
    const { publicKey } = await import('node:crypto').then((c) => c.generateKeyPairSync('ec', { namedCurve: 'P-256' }));
    const pem = publicKey.export({ type: 'spki', format: 'pem' }) as string;
    proxy.hooks.onResponse = ({ method, path }, res) =>
      method === 'GET' && path === TOKEN && res.status === 200
        ? rewriteJson(res.body, (j) => {
            j.payload = Buffer.from(pem).toString('base64');
          })
        : undefined;
    const rotates = proxy.count('POST', ROTATE);
    await expect(kp.rotateWithMaterial(ref, newMaterial().material)).rejects.toMatchObject({
      code: 'UPSTREAM_REJECTED',
      details: { reason: 'not_rsa', operation: 'getImportToken' },
    });
    expect(proxy.count('POST', ROTATE)).toBe(rotates);
  });

  it('a token prepared ahead is used once by a rotate: no POST or GET import_token at rotate time', async () => {
    cs.stack.kp.advanceClock(HOUR_MS + 1_000);
    const handle = kp.prepareImportToken!({ region: ref.region, instanceId: ref.instanceId });
    await handle;
    const [posts, gets] = [proxy.count('POST', TOKEN_PATH), proxy.count('GET', TOKEN_PATH)];
    const before = await kp.listVersions(ref);
    expect(await kp.rotateWithMaterial(ref, newMaterial().material, { token: handle })).toBe(true);
    expect([proxy.count('POST', TOKEN_PATH) - posts, proxy.count('GET', TOKEN_PATH) - gets]).toEqual([0, 0]);
    expect(await kp.listVersions(ref)).toHaveLength(before.length + 1);
    // used once: the same handle again fetches a token of its own (refused here by the 1 h rule, after the token)
    await expect(kp.rotateWithMaterial(ref, newMaterial().material, { token: handle })).rejects.toMatchObject({
      code: 'ROTATION_TOO_SOON',
    });
    expect(proxy.count('POST', TOKEN_PATH) - posts).toBe(1);
  });
});
