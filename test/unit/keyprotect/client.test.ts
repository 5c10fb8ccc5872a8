import { describe, expect, it } from 'vitest';
import type { Clock, KeyId, Random } from '../../../src/core/index.js';
import {
  authenticatorFromConfig,
  createKeyProtectClient,
  type KeyProtectClientOptions,
} from '../../../src/keyprotect/index.js';
import { parseKeyInfo, parseUnwrap, parseVersionsPage, parseWrap } from '../../../src/keyprotect/responses.js';

const random: Random = { bytes: (n) => Buffer.alloc(n), uuid: () => '00000000-0000-4000-8000-000000000000' };
const clock: Clock = { nowMs: () => 0 };
const base = (): KeyProtectClientOptions => ({
  endpoints: { 'us-south': 'http://127.0.0.1:1' },
  authenticator: authenticatorFromConfig({ kind: 'bearer', token: 't' }),
  random,
  clock,
});

describe('createKeyProtectClient options', () => {
  it('accepts the defaults', () => {
    expect(Object.keys(createKeyProtectClient(base())).sort()).toEqual([
      'createGeneratedRootKey',
      'createImportedKey',
      'findKeyByAlias',
      'getKey',
      'identity',
      'listVersions',
      'prepareImportToken',
      'probeImportToken',
      'rotateWithMaterial',
      'unwrap',
      'wrap',
    ]);
  });

  it.each<[string, Partial<KeyProtectClientOptions>, string]>([
    ['no endpoints', { endpoints: {} }, 'endpoints'],
    ['a bad region name', { endpoints: { US_SOUTH: 'http://x' } }, 'endpoints.US_SOUTH'],
    ['a relative URL', { endpoints: { 'us-south': 'us-south.kms.cloud.ibm.com' } }, 'endpoints.us-south'],
    ['token lifetime below 300 s', { importTokenExpirationSeconds: 299 }, 'importTokenExpirationSeconds'],
    ['token lifetime above 24 h', { importTokenExpirationSeconds: 86_401 }, 'importTokenExpirationSeconds'],
    ['a zero timeout', { timeoutMs: 0 }, 'timeoutMs'],
    ['useImportToken "yes"', { useImportToken: 'yes' as unknown as boolean }, 'useImportToken'],
    ['no authenticator', { authenticator: undefined as never }, 'authenticator'],
    ['retry.maxAttempts 0', { retry: { maxAttempts: 0 } }, 'retry.maxAttempts'],
  ])('rejects %s with CONFIG_INVALID', (_case, override, field) => {
    expect(() => createKeyProtectClient({ ...base(), ...override })).toThrow(
      expect.objectContaining({ code: 'CONFIG_INVALID', details: { field } }),
    );
  });
});

describe('client input validation (before any request)', () => {
  const kp = createKeyProtectClient(base());
  const ref = {
    region: 'us-south',
    instanceId: '11111111-2222-4333-8444-555555555555',
    keyId: '22222222-3333-4444-8555-666666666666',
  } as never;

  it.each([
    ['an unconfigured region', () => kp.getKey({ ...(ref as object), region: 'eu-de' } as never), 'region'],
    ['a key id that is not a UUID', () => kp.getKey({ ...(ref as object), keyId: '../x' } as never), 'keyId'],
    ['a bad correlation id', () => kp.getKey(ref, { correlationId: 'a\r\nb' }), 'correlationId'],
    ['an empty wrap plaintext', () => kp.wrap(ref, Buffer.alloc(0), []), 'plaintext'],
    ['an AAD entry over 255 characters', () => kp.wrap(ref, Buffer.from('x'), ['a'.repeat(256)]), 'aad'],
    ['an empty unwrap ciphertext', () => kp.unwrap(ref, '', []), 'ciphertext'],
    [
      'six aliases',
      () =>
        kp.createGeneratedRootKey({
          region: 'us-south' as never,
          instanceId: '11111111-2222-4333-8444-555555555555' as never,
          name: 'k',
          aliases: ['aa', 'bb', 'cc', 'dd', 'ee', 'ff'],
        }),
      'aliases',
    ],
    [
      'an empty name',
      () =>
        kp.createGeneratedRootKey({
          region: 'us-south' as never,
          instanceId: '11111111-2222-4333-8444-555555555555' as never,
          name: '',
        }),
      'name',
    ],
  ])('rejects %s with VALIDATION_FAILED', async (_case, call, field) => {
    await expect(call()).rejects.toMatchObject({
      code: 'VALIDATION_FAILED',
      details: expect.objectContaining({ field }),
    });
  });
});

describe('response parsing', () => {
  const ctx = { operation: 'getKey' as const, region: 'us-south', correlationId: 'c' };
  const key = {
    id: '22222222-3333-4444-8555-666666666666',
    crn: 'crn:v1:bluemix:public:kms:us-south:a/1:11111111-2222-4333-8444-555555555555:key:22222222-3333-4444-8555-666666666666',
    name: 'k',
    state: 1,
    imported: true,
    extractable: false,
    keyVersion: { id: '33333333-3333-4444-8555-666666666666', creationDate: '2026-01-02T00:00:00Z' },
    creationDate: '2026-01-01T00:00:00Z',
    lastRotateDate: '2026-01-02T00:00:00Z',
    aliases: ['a1', 7],
  };

  it('maps a key resource', () => {
    expect(parseKeyInfo({ resources: [key] }, ctx)).toEqual({
      id: key.id,
      crn: key.crn,
      name: 'k',
      state: 1,
      imported: true,
      extractable: false,
      deleted: false,
      currentVersionId: '33333333-3333-4444-8555-666666666666',
      currentVersionCreatedAtMs: Date.parse('2026-01-02T00:00:00Z'),
      creationAtMs: Date.parse('2026-01-01T00:00:00Z'),
      lastRotateAtMs: Date.parse('2026-01-02T00:00:00Z'),
      aliases: ['a1'],
    });
  });

  it.each([
    ['no resources', {}],
    ['an unknown state', { resources: [{ ...key, state: 4 }] }],
    ['no key version', { resources: [{ ...key, keyVersion: undefined }] }],
    ['a bad date', { resources: [{ ...key, creationDate: 'yesterday' }] }],
    ['a non-UUID id', { resources: [{ ...key, id: 'k1' }] }],
  ])('refuses a key body with %s as UPSTREAM_REJECTED', (_case, body) => {
    expect(() => parseKeyInfo(body, ctx)).toThrow(
      expect.objectContaining({
        code: 'UPSTREAM_REJECTED',
        details: expect.objectContaining({ reason: 'malformed_response', operation: 'getKey' }),
      }),
    );
  });

  it('maps versions, wrap and unwrap bodies', () => {
    expect(
      parseVersionsPage({ resources: [{ id: key.keyVersion.id, creationDate: '2026-01-02T00:00:00Z' }] }, ctx),
    ).toEqual([{ id: key.keyVersion.id, createdAtMs: Date.parse('2026-01-02T00:00:00Z') }]);
    expect(parseVersionsPage({}, ctx)).toEqual([]);
    expect(parseWrap({ ciphertext: 'Y3Q=', keyVersion: { id: key.keyVersion.id } }, ctx)).toEqual({
      ciphertext: 'Y3Q=',
      keyVersionId: key.keyVersion.id,
    });
    const unwrapped = parseUnwrap(
      {
        plaintext: 'ZGVr',
        keyVersion: { id: key.keyVersion.id },
        ciphertext: 'bmV3',
        rewrappedKeyVersion: { id: key.id },
      },
      ctx,
    );
    expect(unwrapped.plaintext.toString()).toBe('dek');
    expect(unwrapped.rewrappedCiphertext).toBe('bmV3');
    expect(unwrapped.rewrappedKeyVersionId).toBe(key.id as KeyId);
    expect(() => parseWrap({ keyVersion: { id: key.id } }, ctx)).toThrow(
      expect.objectContaining({ code: 'UPSTREAM_REJECTED' }),
    );
  });
});
