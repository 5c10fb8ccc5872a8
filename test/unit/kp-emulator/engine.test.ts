/**
 * The emulator engine without HTTP: the order of the rotate checks (§4.5), secure-import verification (§3.2) and
 * the switches, with a fake clock and a small RSA key pair standing in for the pool.
 */
import { constants, createCipheriv, generateKeyPairSync, publicEncrypt, randomBytes } from 'node:crypto';
import { beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/core/index.js';
import { KpError } from '../../../src/local/kp-emulator/errors.js';
import type { RsaKeyPool } from '../../../src/local/kp-emulator/keyPool.js';
import { type EventInfo, type InstanceState, KpEngine, newInstance } from '../../../src/local/kp-emulator/service.js';
import { DEFAULT_RULES, type EmulatorRules } from '../../../src/local/kp-emulator/types.js';

// Two small pairs, alternating: consecutive tokens get different keys (like the real pool), every other one the same.
const pairs = [0, 1].map(() => {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(), privateKey };
});
let taken = 0;
const pool: RsaKeyPool = { take: async () => pairs[taken++ % 2]!, prewarm() {}, ready: 2, generated: 2 };

let now: number;
let rules: EmulatorRules;
let engine: KpEngine;
let inst: InstanceState;
const caller = { iamId: 'iam-ServiceId-test', name: 'test' };

beforeEach(() => {
  now = Date.parse('2026-08-12T10:00:00Z');
  rules = { ...DEFAULT_RULES };
  engine = new KpEngine({ accountId: 'acc', nowMs: () => now, rules: () => rules, pool, logger: silentLogger });
  inst = newInstance('us-south', '11111111-2222-4333-8444-555555555555', now);
});

const ev = (): EventInfo => ({ action: '', requestData: {}, responseData: {} });
async function call(method: string, path: string, body?: unknown, query = '', c = caller) {
  return engine.handle(
    {
      method,
      path,
      query: new URLSearchParams(query),
      headers: {},
      body: body === undefined ? undefined : Buffer.from(JSON.stringify(body)),
      caller: c,
      instance: inst,
    },
    ev(),
  );
}
async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'OK';
  } catch (err) {
    if (err instanceof KpError) return `${err.status} ${err.code}`;
    throw err;
  }
}
const b64 = (b: Buffer) => b.toString('base64');
async function create(res: Record<string, unknown>): Promise<string> {
  const out = await call('POST', '/keys', { metadata: { collectionTotal: 1 }, resources: [{ name: 'k', ...res }] });
  return ((out.body as { resources: Array<{ id: string }> }).resources[0] as { id: string }).id;
}

describe('rotate: §4.5 check order', () => {
  type Setup = {
    imported?: boolean;
    standard?: boolean;
    state?: 'suspended' | 'deleted';
    rotatedRecently?: boolean;
    enforceToken?: boolean;
  };
  it.each<{ case: string; setup: Setup; body?: unknown; expected: string }>([
    { case: 'deleted before standard', setup: { standard: true, state: 'deleted' }, expected: '410 KEY_DELETED_ERR' },
    {
      case: 'standard before suspended',
      setup: { standard: true, state: 'suspended' },
      expected: '400 KEY_ROOT_REQ_ERR',
    },
    {
      case: 'suspended before missing payload',
      setup: { imported: true, state: 'suspended' },
      expected: '409 KEY_ACTION_INVALID_STATE_ERR',
    },
    {
      case: 'missing payload before the hour rule',
      setup: { imported: true, rotatedRecently: true },
      expected: '400 KEY_PAYLOAD_REQ_ERR',
    },
    {
      case: 'payload on a generated key',
      setup: { rotatedRecently: true },
      body: { payload: b64(randomBytes(32)) },
      expected: '400 INVALID_QUERY_PARAM_ERR',
    },
    {
      case: 'enforce_token before the hour rule',
      setup: { imported: true, rotatedRecently: true, enforceToken: true },
      body: { payload: b64(randomBytes(32)) },
      expected: '409 KEY_CREATE_IMPORT_ACCESS_ERR',
    },
    {
      case: 'size before the hour rule',
      setup: { imported: true, rotatedRecently: true },
      body: { payload: b64(randomBytes(8)) },
      expected: '400 INVALID_FIELD_ERR',
    },
    {
      case: 'the hour rule',
      setup: { imported: true, rotatedRecently: true },
      body: { payload: b64(randomBytes(16)) },
      expected: '409 KEY_ROTATION_NOT_PERMITTED',
    },
    {
      case: 'first rotation right after creation',
      setup: { imported: true },
      body: { payload: b64(randomBytes(24)) },
      expected: 'OK',
    },
  ])('$case → $expected', async ({ setup, body, expected }) => {
    // Arrange
    const id = await create({
      ...(setup.imported ? { payload: b64(randomBytes(32)) } : {}),
      ...(setup.standard ? { extractable: true } : {}),
    });
    if (setup.rotatedRecently) {
      await call('POST', `/keys/${id}/actions/rotate`, setup.imported ? { payload: b64(randomBytes(32)) } : undefined);
      now += 60_000;
    }
    if (setup.state === 'suspended') await call('POST', `/keys/${id}/actions/disable`);
    if (setup.state === 'deleted') await call('DELETE', `/keys/${id}`);
    if (setup.enforceToken) {
      await call(
        'PUT',
        '/instance/policies',
        {
          resources: [
            {
              policy_type: 'keyCreateImportAccess',
              policy_data: { enabled: true, attributes: { enforce_token: true } },
            },
          ],
        },
        'policy=keyCreateImportAccess',
      );
    }
    // Act + Assert
    expect(await codeOf(call('POST', `/keys/${id}/actions/rotate`, body))).toBe(expected);
  });

  it('rotationMinIntervalMs is a switch', async () => {
    rules.rotationMinIntervalMs = 60_000;
    const id = await create({});
    await call('POST', `/keys/${id}/actions/rotate`);
    now += 59_999;
    expect(await codeOf(call('POST', `/keys/${id}/actions/rotate`))).toBe('409 KEY_ROTATION_NOT_PERMITTED');
    now += 1;
    expect(await codeOf(call('POST', `/keys/${id}/actions/rotate`))).toBe('OK');
  });

  it('rejectMaterialReuse (off by default) refuses material of an existing version', async () => {
    const m = randomBytes(32);
    const id = await create({ payload: b64(m) });
    expect(await codeOf(call('POST', `/keys/${id}/actions/rotate`, { payload: b64(m) }))).toBe('OK');
    rules.rejectMaterialReuse = true;
    now += 3_600_000;
    expect(await codeOf(call('POST', `/keys/${id}/actions/rotate`, { payload: b64(m) }))).toBe('400 INVALID_FIELD_ERR');
  });

  it('rotateAllowedWhenDeactivated decides for an expired key', async () => {
    const id = await create({ expirationDate: new Date(now + 1000).toISOString() });
    now += 2000;
    expect(await codeOf(call('POST', `/keys/${id}/actions/wrap`, {}))).toBe('400 KEY_EXPIRED_ERR');
    rules.rotateAllowedWhenDeactivated = false;
    expect(await codeOf(call('POST', `/keys/${id}/actions/rotate`))).toBe('400 KEY_EXPIRED_ERR');
    rules.rotateAllowedWhenDeactivated = true;
    expect(await codeOf(call('POST', `/keys/${id}/actions/rotate`))).toBe('OK');
  });
});

describe('secure import: §3.2 verification', () => {
  async function token(maxAllowedRetrievals = 5) {
    await call('POST', '/import_token', { expiration: 600, maxAllowedRetrievals });
    const got = await call('GET', '/import_token');
    return got.body as { payload: string; nonce: string };
  }
  function seal(
    t: { payload: string; nonce: string },
    material: Buffer,
    nonce = Buffer.from(t.nonce, 'base64'),
    ivOverride?: Buffer,
  ) {
    const pem = Buffer.from(t.payload, 'base64').toString();
    const iv = randomBytes(12);
    const c = createCipheriv(`aes-${material.length * 8}-gcm` as 'aes-256-gcm', material, iv);
    const enc = Buffer.concat([c.update(nonce), c.final(), c.getAuthTag()]);
    return {
      payload: b64(
        publicEncrypt({ key: pem, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, material),
      ),
      encryptedNonce: b64(enc),
      iv: b64(ivOverride ?? iv),
    };
  }

  it.each([16, 24, 32])('accepts %i-byte sealed material and wraps with it', async (n) => {
    const t = await token();
    const id = await create(seal(t, randomBytes(n)));
    const w = await call('POST', `/keys/${id}/actions/wrap`, { plaintext: b64(Buffer.from('dek')) });
    const u = await call('POST', `/keys/${id}/actions/unwrap`, {
      ciphertext: (w.body as { ciphertext: string }).ciphertext,
    });
    expect(Buffer.from((u.body as { plaintext: string }).plaintext, 'base64').toString()).toBe('dek');
  });

  it.each<{ case: string; make: (t: { payload: string; nonce: string }) => Record<string, unknown>; expected: string }>(
    [
      {
        case: 'wrong IV',
        make: (t) => seal(t, randomBytes(32), undefined, randomBytes(12)),
        expected: '400 INCORRECT_NONCE_IV_ERR',
      },
      {
        case: 'other nonce',
        make: (t) => seal(t, randomBytes(32), randomBytes(12)),
        expected: '400 INCORRECT_NONCE_ERR',
      },
      {
        case: 'material of 20 bytes',
        make: (t) => ({
          ...seal(t, randomBytes(32)),
          payload: b64(
            publicEncrypt(
              {
                key: Buffer.from(t.payload, 'base64').toString(),
                padding: constants.RSA_PKCS1_OAEP_PADDING,
                oaepHash: 'sha256',
              },
              randomBytes(20),
            ),
          ),
        }),
        expected: '400 INVALID_FIELD_ERR',
      },
      {
        case: 'payload not sealed for this token',
        make: (t) => ({ ...seal(t, randomBytes(32)), payload: b64(randomBytes(256)) }),
        expected: '400 INVALID_FIELD_ERR',
      },
      {
        case: 'iv without encryptedNonce',
        make: (t) => ({ ...seal(t, randomBytes(32)), encryptedNonce: undefined }),
        expected: '400 INVALID_FIELD_ERR',
      },
      {
        case: 'SHA-1 algorithm',
        make: (t) => ({ ...seal(t, randomBytes(32)), encryptionAlgorithm: 'RSAES_OAEP_SHA_1' }),
        expected: '400 INVALID_FIELD_ERR',
      },
    ],
  )('$case → $expected', async ({ make, expected }) => {
    const t = await token();
    expect(await codeOf(create(make(t)))).toBe(expected);
  });

  it('expiry is checked on the emulator clock; exhausted GET follows exhaustedTokenGetStatus', async () => {
    const t = await token(1);
    expect(await codeOf(call('GET', '/import_token'))).toBe('409 IMPORT_TOKEN_EXPIRED_ERR');
    rules.exhaustedTokenGetStatus = 404;
    expect(await codeOf(call('GET', '/import_token'))).toBe('404 IMPORT_TOKEN_NOT_FOUND_ERR');
    expect(await codeOf(create(seal(t, randomBytes(32))))).toBe('OK');
    now += 600_000;
    expect(await codeOf(create(seal(t, randomBytes(32))))).toBe('409 IMPORT_TOKEN_EXPIRED_ERR');
    expect(await codeOf(call('GET', '/import_token'))).toBe('409 IMPORT_TOKEN_EXPIRED_ERR');
  });

  it('a payload sealed for an overwritten token → INCORRECT_NONCE_ERR (new key pair, or the same pair reused)', async () => {
    const t = await token();
    await call('POST', '/import_token', {});
    expect(await codeOf(create(seal(t, randomBytes(32))))).toBe('400 INCORRECT_NONCE_ERR');
    await call('POST', '/import_token', {}); // the third token has the first token's key pair again
    expect(await codeOf(create(seal(t, randomBytes(32))))).toBe('400 INCORRECT_NONCE_ERR');
  });

  it('importTokenCreateStatus is a switch', async () => {
    expect((await call('POST', '/import_token', {})).status).toBe(200);
    rules.importTokenCreateStatus = 201;
    expect((await call('POST', '/import_token', {})).status).toBe(201);
  });
});

describe('routing', () => {
  it.each([
    ['GET', '/keys/%E0%A4%A', '404 KEY_NOT_FOUND_ERR'],
    ['POST', '/keys/x/aliases/%E0%A4%A', '404 KEY_NOT_FOUND_ERR'],
    ['GET', '/nope', '404 NOT_FOUND_ERR'],
    ['PUT', '/keys', '405 METHOD_NOT_ALLOWED_ERR'],
    ['POST', '/keys/x/actions/explode', '404 NOT_FOUND_ERR'],
    ['POST', '/keys/x?action=explode', '400 INVALID_QUERY_PARAM_ERR'],
  ])('%s %s → %s', async (method, path, expected) => {
    const [p = '', q = ''] = path.split('?');
    expect(await codeOf(call(method, p, undefined, q))).toBe(expected);
  });
});

describe('dual authorization delete', () => {
  it('needs setKeyForDeletion by another identity within 7 days', async () => {
    const id = await create({});
    await call(
      'PUT',
      `/keys/${id}/policies`,
      { resources: [{ dualAuthDelete: { enabled: true } }] },
      'policy=dualAuthDelete',
    );
    await call('POST', `/keys/${id}/actions/setKeyForDeletion`);
    expect(await codeOf(call('DELETE', `/keys/${id}`))).toBe('409 AUTHORIZATIONS_NOT_MET');
    const other = { iamId: 'iam-ServiceId-other', name: 'other' };
    now += 8 * 86_400_000;
    expect(await codeOf(call('DELETE', `/keys/${id}`, undefined, '', other))).toBe('409 AUTHORIZATIONS_NOT_MET');
    await call('POST', `/keys/${id}/actions/setKeyForDeletion`);
    expect(await codeOf(call('DELETE', `/keys/${id}`, undefined, '', other))).toBe('OK');
  });
});
