import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { httpStatusByCode, toErrorResponse } from '../../src/api/httpStatus.js';
import { createJsonLogger } from '../../src/app/system.js';
import {
  AppError,
  asGroupId,
  ERROR_CODES,
  fingerprintOf,
  formatKeyCrn,
  hasCode,
  KeyMaterial,
  parseKeyCrn,
  redact,
  Sensitive,
} from '../../src/core/index.js';

const bytes = Buffer.alloc(32, 0xab);

describe('KeyMaterial', () => {
  it('never prints its bytes', () => {
    const m = KeyMaterial.fromBytes(bytes);
    const hex = bytes.toString('hex');
    const b64 = bytes.toString('base64');
    for (const out of [String(m), JSON.stringify({ m }), inspect(m), inspect({ nested: { m } }), `${m}`]) {
      expect(out).toContain('[REDACTED]');
      expect(out).not.toContain(hex);
      expect(out).not.toContain(b64);
    }
  });

  it('copies its input and zeroes on demand', () => {
    const input = Buffer.from(bytes);
    const m = KeyMaterial.fromBytes(input);
    input.fill(0);
    expect(m.use((b) => b.equals(bytes))).toBe(true);
    m.zero();
    expect(m.isZeroed).toBe(true);
    expect(() => m.use(() => 1)).toThrow(/zeroed/);
  });

  it.each([0, 15, 31, 33, 64])('rejects %i-byte material', (n) => {
    expect(() => KeyMaterial.fromBytes(Buffer.alloc(n))).toThrow(/16, 24 or 32/);
  });

  it('fingerprints deterministically without being a plain hash', () => {
    const a = fingerprintOf(KeyMaterial.fromBytes(bytes));
    expect(a).toMatch(/^fp1:[0-9a-f]{32}$/);
    expect(fingerprintOf(KeyMaterial.fromBytes(bytes))).toBe(a);
    expect(fingerprintOf(KeyMaterial.fromBytes(Buffer.alloc(32, 1)))).not.toBe(a);
  });
});

describe('Sensitive and redaction', () => {
  it('hides wrapped values and secret-named fields', () => {
    const s = new Sensitive('tok-123');
    expect(JSON.stringify({ s })).not.toContain('tok-123');
    expect(redact({ payload: 'abc', nested: { apikey: 'k', ok: 1 }, buf: Buffer.from('zz') })).toEqual({
      payload: '[REDACTED]',
      nested: { apikey: '[REDACTED]', ok: 1 },
      buf: '[REDACTED]',
    });
  });

  it('logger redacts', () => {
    const lines: string[] = [];
    const log = createJsonLogger({ write: (l) => lines.push(l) }).child({ runId: 'run-1' });
    log.info('sealed', { nonce: 'AAAA', material: KeyMaterial.fromBytes(bytes), count: 2 });
    expect(lines).toHaveLength(1);
    const rec = JSON.parse(lines[0]!);
    expect(rec).toMatchObject({ level: 'info', msg: 'sealed', runId: 'run-1', nonce: '[REDACTED]', count: 2 });
    expect(lines[0]).not.toContain(bytes.toString('base64'));
  });
});

describe('ids', () => {
  it('parses and formats CRNs', () => {
    const crn =
      'crn:v1:bluemix:public:kms:us-south:a/abc123:11111111-2222-3333-4444-555555555555:key:aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee';
    const p = parseKeyCrn(crn);
    expect(p).toMatchObject({ region: 'us-south', accountId: 'abc123' });
    expect(formatKeyCrn(p)).toBe(crn);
  });
  it.each(['', 'A', '-a', 'a-', 'x'.repeat(64), '../etc', 'a b'])('rejects group id %j', (v) => {
    expect(() => asGroupId(v)).toThrow(AppError);
  });
});

describe('error table', () => {
  it('has a status for every code', () => {
    for (const c of ERROR_CODES) expect(httpStatusByCode[c]).toBeGreaterThanOrEqual(400);
  });
  it('exposes 4xx detail and hides 5xx detail', () => {
    const bad = toErrorResponse(
      new AppError('GROUP_NOT_FOUND', 'Group x does not exist', { details: { groupId: 'x' } }),
      'r1',
    );
    expect(bad).toEqual({
      statusCode: 404,
      body: {
        error: {
          code: 'GROUP_NOT_FOUND',
          message: 'Group x does not exist',
          details: { groupId: 'x' },
          requestId: 'r1',
        },
      },
    });
    const hidden = toErrorResponse(new Error('upstream said secret things'), 'r2');
    expect(hidden.statusCode).toBe(500);
    expect(JSON.stringify(hidden)).not.toContain('secret things');
    expect(hasCode(new AppError('LEASE_LOST', 'x'), 'LEASE_LOST')).toBe(true);
  });
});
