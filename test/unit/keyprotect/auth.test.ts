import { describe, expect, it } from 'vitest';
import { Sensitive } from '../../../src/core/index.js';
import { guardAuthenticator } from '../../../src/keyprotect/auth.js';
import { authenticatorFromConfig, type KeyProtectAuthConfig } from '../../../src/keyprotect/index.js';

describe('authenticatorFromConfig', () => {
  it.each<[KeyProtectAuthConfig, string]>([
    [{ kind: 'iam', apiKey: 'abc-123' }, 'iam'],
    [{ kind: 'iam', apiKey: new Sensitive('abc-123'), iamUrl: 'http://127.0.0.1:9999/' }, 'iam'],
    [{ kind: 'container', profileName: 'lockstep-rotator' }, 'container'],
    [{ kind: 'container', profileId: 'Profile-1234', iamUrl: 'https://iam.cloud.ibm.com' }, 'container'],
    [{ kind: 'container', profileName: 'p', crTokenFilename: '/var/run/secrets/tokens/sa-token' }, 'container'],
    [{ kind: 'bearer', token: 'eyJhbGciOi.x.y' }, 'bearerToken'],
  ])('builds %j', (cfg, type) => {
    expect(authenticatorFromConfig(cfg).authenticationType()).toBe(type);
  });

  it.each<[string, unknown, string]>([
    ['iam without apiKey', { kind: 'iam' }, 'auth.apiKey'],
    ['iam with blank apiKey', { kind: 'iam', apiKey: '  ' }, 'auth.apiKey'],
    ['iam with an apiKey containing whitespace', { kind: 'iam', apiKey: 'a b' }, 'auth.apiKey'],
    ['iam with a relative iamUrl', { kind: 'iam', apiKey: 'k', iamUrl: 'iam.local' }, 'auth.iamUrl'],
    ['iam with a ftp iamUrl', { kind: 'iam', apiKey: 'k', iamUrl: 'ftp://iam' }, 'auth.iamUrl'],
    ['container without profile', { kind: 'container' }, 'auth.profileName'],
    ['container with empty profileId', { kind: 'container', profileId: '' }, 'auth.profileId'],
    ['bearer without token', { kind: 'bearer' }, 'auth.token'],
    ['unknown kind', { kind: 'basic' }, 'auth.kind'],
    ['not an object', null, 'auth'],
  ])('rejects %s', (_case, cfg, field) => {
    expect(() => authenticatorFromConfig(cfg as KeyProtectAuthConfig)).toThrow(
      expect.objectContaining({ code: 'CONFIG_INVALID', details: { field } }),
    );
  });

  it('never echoes a secret in its errors', () => {
    try {
      authenticatorFromConfig({ kind: 'iam', apiKey: 'super secret key' });
      expect.unreachable();
    } catch (err) {
      expect(JSON.stringify(err)).not.toContain('super secret');
      expect((err as Error).message).not.toContain('super secret');
    }
  });
});

describe('guardAuthenticator', () => {
  const failing = (err: unknown) =>
    guardAuthenticator({ authenticationType: () => 'iam', authenticate: () => Promise.reject(err) });

  it('passes a successful authentication through', async () => {
    const headers: Record<string, string> = {};
    const guarded = guardAuthenticator({
      authenticationType: () => 'iam',
      authenticate: async (o) => {
        o.headers = { ...o.headers, Authorization: 'Bearer t' };
      },
    });
    const opts: { headers?: Record<string, string> } = { headers };
    await guarded.authenticate(opts);
    expect(opts.headers).toEqual({ Authorization: 'Bearer t' });
    expect(guarded.authenticationType()).toBe('iam');
  });

  it.each([400, 401, 403])('IAM %i → UNAUTHENTICATED, not retryable', async (status) => {
    await expect(failing(Object.assign(new Error('x'), { status })).authenticate({})).rejects.toMatchObject({
      code: 'UNAUTHENTICATED',
      retryable: false,
      details: { upstream: 'iam', iamStatus: status },
    });
  });

  it.each([
    ['503', Object.assign(new Error('x'), { status: 503 })],
    ['429', Object.assign(new Error('x'), { status: 429 })],
    ['no response', Object.assign(new Error('connect ECONNREFUSED'), { statusText: 'ECONNREFUSED' })],
  ])('IAM %s → UPSTREAM_UNAVAILABLE, retryable', async (_case, err) => {
    await expect(failing(err).authenticate({})).rejects.toMatchObject({
      code: 'UPSTREAM_UNAVAILABLE',
      retryable: true,
    });
  });
});
