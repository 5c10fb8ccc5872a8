import { BasicAuthenticator, ContainerAuthenticator, IamAuthenticator } from 'ibm-cloud-sdk-core';
import { describe, expect, it } from 'vitest';
import type { AppError } from '../../../src/core/index.js';
import { toStoreError } from '../../../src/store/errors.js';
import { StoreConflictError, storeConfigFromEnv } from '../../../src/store/index.js';

const codeOf = (fn: () => unknown) => {
  try {
    fn();
    return undefined;
  } catch (err) {
    return (err as AppError).code;
  }
};

describe('storeConfigFromEnv', () => {
  it('uses an IAM API key, with an optional IAM endpoint', () => {
    const c = storeConfigFromEnv({
      CLOUDANT_URL: 'https://acct.cloudantnosqldb.appdomain.cloud/',
      CLOUDANT_APIKEY: 'k-123',
      IAM_URL: 'http://127.0.0.1:9999',
    });
    expect(c.url).toBe('https://acct.cloudantnosqldb.appdomain.cloud');
    expect(c.auth).toBe('iam-apikey');
    expect(c.authenticator).toBeInstanceOf(IamAuthenticator);
    // The credential is not part of what a log line of the config would show.
    expect(JSON.stringify({ url: c.url, auth: c.auth })).not.toContain('k-123');
  });

  it('uses a trusted profile by id or by name', () => {
    const byId = storeConfigFromEnv({ CLOUDANT_URL: 'https://x.example', CLOUDANT_TRUSTED_PROFILE: 'Profile-abc' });
    expect(byId.authenticator).toBeInstanceOf(ContainerAuthenticator);
    expect(byId.auth).toBe('trusted-profile');
    const byName = storeConfigFromEnv({ CLOUDANT_URL: 'https://x.example', CLOUDANT_TRUSTED_PROFILE: 'lockstep-ce' });
    expect(byName.authenticator).toBeInstanceOf(ContainerAuthenticator);
  });

  it('uses basic auth for a plain CouchDB and never runs without credentials, not even on loopback', () => {
    expect(
      storeConfigFromEnv({ CLOUDANT_URL: 'http://couch:5984', CLOUDANT_USERNAME: 'u', CLOUDANT_PASSWORD: 'p' })
        .authenticator,
    ).toBeInstanceOf(BasicAuthenticator);
    for (const url of ['http://127.0.0.1:5984', 'http://localhost:5984', 'http://couch:5984']) {
      expect(() => storeConfigFromEnv({ CLOUDANT_URL: url })).toThrow(
        expect.objectContaining({ code: 'CONFIG_INVALID', message: expect.stringContaining('CLOUDANT_USERNAME') }),
      );
    }
  });

  it('reads the optional prefix and timeout', () => {
    const c = storeConfigFromEnv({
      CLOUDANT_URL: 'http://localhost:1',
      CLOUDANT_USERNAME: 'u',
      CLOUDANT_PASSWORD: 'p',
      CLOUDANT_DB_PREFIX: 'prod-',
      CLOUDANT_TIMEOUT_MS: '5000',
    });
    expect(c).toMatchObject({ dbPrefix: 'prod-', timeoutMs: 5000 });
  });

  it.each([
    { case: 'no URL', env: {} },
    { case: 'not a URL', env: { CLOUDANT_URL: 'nope' } },
    { case: 'ftp', env: { CLOUDANT_URL: 'ftp://x' } },
    { case: 'credentials in the URL', env: { CLOUDANT_URL: 'https://u:p@x.example', CLOUDANT_APIKEY: 'k' } },
    { case: 'remote URL without credentials', env: { CLOUDANT_URL: 'https://x.example' } },
    { case: 'bad timeout', env: { CLOUDANT_URL: 'http://127.0.0.1:1', CLOUDANT_TIMEOUT_MS: 'soon' } },
  ])('refuses $case with CONFIG_INVALID', ({ env }) => {
    expect(codeOf(() => storeConfigFromEnv(env))).toBe('CONFIG_INVALID');
  });
});

describe('toStoreError', () => {
  it.each([
    { status: undefined, code: 'STORE_UNAVAILABLE', retryable: true },
    { status: 429, code: 'STORE_UNAVAILABLE', retryable: true },
    { status: 503, code: 'STORE_UNAVAILABLE', retryable: true },
    { status: 401, code: 'CONFIG_INVALID', retryable: false },
    { status: 403, code: 'CONFIG_INVALID', retryable: false },
    { status: 413, code: 'PAYLOAD_TOO_LARGE', retryable: false },
    { status: 400, code: 'VALIDATION_FAILED', retryable: false },
    { status: 418, code: 'INTERNAL', retryable: false },
  ])('maps status $status to $code', ({ status, code, retryable }) => {
    const err = toStoreError({ status, message: 'x', result: { error: 'e', reason: 'r' } }, 'do a thing');
    expect(err.code).toBe(code);
    expect(err.retryable).toBe(retryable);
  });

  it('never copies the raw body into the error', () => {
    const err = toStoreError({ status: 500, body: '{"data":{"secret":"s3cr3t"}}', result: {} }, 'read');
    expect(JSON.stringify(err)).not.toContain('s3cr3t');
  });

  it('passes AppErrors through and keeps the conflict’s current document', () => {
    const conflict = new StoreConflictError('x', { docId: 'group:a', current: { value: { a: 1 }, rev: '2-b' } });
    expect(toStoreError(conflict, 'write')).toBe(conflict);
    expect(conflict.details).toEqual({ docId: 'group:a', currentRev: '2-b' });
    expect(conflict.code).toBe('STORE_CONFLICT');
  });
});
