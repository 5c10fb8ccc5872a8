import { describe, expect, it } from 'vitest';
import type { Clock } from '../../../src/core/index.js';
import { describeSdkError, parseRetryAfter } from '../../../src/keyprotect/errors.js';
import { KpOperation, toKeyProtectError, type UpstreamFailure } from '../../../src/keyprotect/index.js';

const clock: Clock = { nowMs: () => Date.parse('2026-11-29T04:00:00Z') };
const ctx = (operation: KpOperation = KpOperation.GET_KEY) => ({
  operation,
  region: 'us-south',
  correlationId: 'corr-1',
});

/** An error shaped like sdk-core's formatError() output for an HTTP response. */
function sdkHttpError(status: number, code?: string, headers: Record<string, string> = {}) {
  const err = new Error('Conflict') as Error & Record<string, unknown>;
  err.status = status;
  err.statusText = 'x';
  err.headers = headers;
  err.result = code
    ? {
        metadata: { collectionType: 'application/vnd.ibm.kms.error+json', collectionTotal: 1 },
        resources: [{ errorMsg: `x (${code})`, reasons: [{ code, message: 'm', status }] }],
      }
    : { resources: [{ errorMsg: 'Unauthorized' }] };
  return err;
}

/** An error shaped like sdk-core's formatError() output when no response arrived. */
function sdkNetworkError(code: string) {
  const err = new Error(`connect ${code}`) as Error & Record<string, unknown>;
  err.statusText = code;
  err.body = 'Response not received - no connection was made to the service.';
  return err;
}

describe('describeSdkError', () => {
  it('reads status, reason code and Retry-After from an HTTP error', () => {
    expect(describeSdkError(sdkHttpError(429, 'TOO_MANY_REQUESTS_ERR', { 'Retry-After': '3' }), clock)).toEqual({
      status: 429,
      kpCode: 'TOO_MANY_REQUESTS_ERR',
      retryAfterMs: 3000,
    });
  });

  it('reads a 401 without reasons', () => {
    expect(describeSdkError(sdkHttpError(401), clock)).toEqual({ status: 401 });
  });

  it('ignores a reason code that is not a plain code', () => {
    const err = sdkHttpError(400, 'x');
    expect(describeSdkError(err, clock)).toEqual({ status: 400 });
  });

  it.each([
    ['ECONNRESET', { networkCode: 'ECONNRESET' }],
    ['ECONNABORTED', { networkCode: 'ECONNABORTED' }],
    ['ECONNREFUSED', { networkCode: 'ECONNREFUSED', notSent: true }],
    ['ERR_CANCELED', { networkCode: 'ERR_CANCELED', aborted: true }],
  ])('classifies transport error %s', (code, expected) => {
    expect(describeSdkError(sdkNetworkError(code), clock)).toEqual(expected);
  });

  it('calls anything else unexpected', () => {
    expect(describeSdkError(new Error('Missing required parameters: id'), clock)).toEqual({ unexpected: true });
    expect(describeSdkError('boom', clock)).toEqual({ unexpected: true });
  });
});

describe('parseRetryAfter', () => {
  const now = clock.nowMs();
  it.each([
    ['2', 2000],
    [' 0 ', 0],
    ['Sun, 29 Nov 2026 04:00:05 GMT', 5000],
    ['Sun, 29 Nov 2026 03:59:00 GMT', 0],
  ])('parses %j', (value, ms) => {
    expect(parseRetryAfter(value, now)).toBe(ms);
  });
  it.each([undefined, 'soon', '-1', '1.5'])('ignores %j', (value) => {
    expect(parseRetryAfter(value, now)).toBeUndefined();
  });
});

describe('toKeyProtectError mapping table', () => {
  it.each<[string, UpstreamFailure, string, boolean]>([
    [
      '409 KEY_ROTATION_NOT_PERMITTED',
      { status: 409, kpCode: 'KEY_ROTATION_NOT_PERMITTED' },
      'ROTATION_TOO_SOON',
      false,
    ],
    ['404 KEY_NOT_FOUND_ERR', { status: 404, kpCode: 'KEY_NOT_FOUND_ERR' }, 'KEY_NOT_FOUND', false],
    ['410 KEY_DELETED_ERR', { status: 410, kpCode: 'KEY_DELETED_ERR' }, 'KEY_DELETED', false],
    ['410 without code', { status: 410 }, 'KEY_DELETED', false],
    [
      '409 IMPORT_TOKEN_EXPIRED_ERR',
      { status: 409, kpCode: 'IMPORT_TOKEN_EXPIRED_ERR' },
      'IMPORT_TOKEN_EXPIRED',
      false,
    ],
    ['400 INCORRECT_NONCE_ERR', { status: 400, kpCode: 'INCORRECT_NONCE_ERR' }, 'IMPORT_TOKEN_NONCE_MISMATCH', false],
    [
      '400 INCORRECT_NONCE_IV_ERR',
      { status: 400, kpCode: 'INCORRECT_NONCE_IV_ERR' },
      'IMPORT_TOKEN_NONCE_MISMATCH',
      false,
    ],
    [
      '409 KEY_ACTION_INVALID_STATE_ERR',
      { status: 409, kpCode: 'KEY_ACTION_INVALID_STATE_ERR' },
      'MEMBER_NOT_ACTIVE',
      false,
    ],
    [
      '422 UNPROCESSABLE_CIPHERTEXT_ERR',
      { status: 422, kpCode: 'UNPROCESSABLE_CIPHERTEXT_ERR' },
      'MATERIAL_MISMATCH',
      false,
    ],
    ['401', { status: 401 }, 'UNAUTHENTICATED', false],
    ['403', { status: 403, kpCode: 'FEATURE_RESTRICTED_ERR' }, 'FORBIDDEN', false],
    ['429', { status: 429 }, 'UPSTREAM_RATE_LIMITED', true],
    ['500', { status: 500 }, 'UPSTREAM_UNAVAILABLE', true],
    ['503', { status: 503, kpCode: 'SERVICE_UNAVAILABLE' }, 'UPSTREAM_UNAVAILABLE', true],
    ['connection reset', { networkCode: 'ECONNRESET' }, 'UPSTREAM_UNAVAILABLE', true],
    ['timeout', { networkCode: 'ECONNABORTED' }, 'UPSTREAM_UNAVAILABLE', true],
    ['400 BAD_BODY_ERR', { status: 400, kpCode: 'BAD_BODY_ERR' }, 'UPSTREAM_REJECTED', false],
    ['409 other', { status: 409, kpCode: 'REQ_TOO_EARLY_ERR' }, 'UPSTREAM_REJECTED', false],
    ['404 other', { status: 404 }, 'UPSTREAM_REJECTED', false],
    ['422 other', { status: 422, kpCode: 'KEY_INVALID_STATE_ERR' }, 'UPSTREAM_REJECTED', false],
    ['aborted', { aborted: true }, 'DEADLINE_EXCEEDED', false],
    ['unexpected', { unexpected: true }, 'INTERNAL', false],
  ])('%s → %s', (_case, failure, code, retryable) => {
    const err = toKeyProtectError(failure, ctx());
    expect(err.code).toBe(code);
    expect(err.retryable).toBe(retryable);
    expect(err.details).toMatchObject({
      kpCode: failure.kpCode ?? null,
      status: failure.status ?? null,
      correlationId: 'corr-1',
      region: 'us-south',
      operation: 'getKey',
    });
    expect(err.message.length).toBeGreaterThan(10);
  });

  it('keeps networkCode and retryAfterMs', () => {
    expect(toKeyProtectError({ networkCode: 'ECONNRESET' }, ctx()).details.networkCode).toBe('ECONNRESET');
    expect(toKeyProtectError({ status: 429, retryAfterMs: 1000 }, ctx()).details.retryAfterMs).toBe(1000);
  });

  it('keeps the SDK error as cause, not in details', () => {
    const cause = sdkHttpError(500);
    const err = toKeyProtectError({ status: 500 }, ctx(), cause);
    expect(err.cause).toBe(cause);
    expect(JSON.stringify(err.toJSON())).not.toContain('errorMsg');
  });

  describe('ambiguity of non-idempotent calls', () => {
    it.each<[string, UpstreamFailure, boolean]>([
      ['5xx', { status: 503 }, true],
      ['connection reset', { networkCode: 'ECONNRESET' }, true],
      ['timeout', { networkCode: 'ECONNABORTED' }, true],
      ['aborted in flight', { aborted: true, networkCode: 'ERR_CANCELED' }, true],
      ['aborted before sending', { aborted: true, notSent: true }, false],
      ['connection refused', { networkCode: 'ECONNREFUSED', notSent: true }, false],
      ['429', { status: 429 }, false],
      ['409 too soon', { status: 409, kpCode: 'KEY_ROTATION_NOT_PERMITTED' }, false],
      ['400', { status: 400, kpCode: 'INCORRECT_NONCE_ERR' }, false],
    ])('rotate, %s → ambiguous %s', (_case, failure, ambiguous) => {
      expect(toKeyProtectError(failure, ctx(KpOperation.ROTATE)).details.ambiguous).toBe(ambiguous);
      expect(toKeyProtectError(failure, ctx(KpOperation.CREATE_KEY)).details.ambiguous).toBe(ambiguous);
    });

    it('idempotent calls carry no ambiguity flag', () => {
      expect(toKeyProtectError({ status: 503 }, ctx(KpOperation.WRAP)).details).not.toHaveProperty('ambiguous');
    });
  });
});
