/** WDEK format, the error envelope and the CADF event builder. */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { handleOf, parseWdek, unwrapDek, wrapDek } from '../../../src/local/kp-emulator/crypto.js';
import { errorBody, KpError } from '../../../src/local/kp-emulator/errors.js';
import { buildEvent, eventTime, severityOf } from '../../../src/local/kp-emulator/events.js';

describe('WDEK', () => {
  it.each([16, 24, 32])('round-trips with %i-byte material and names the material by its handle only', (n) => {
    const material = randomBytes(n);
    const dek = randomBytes(32);
    const w = wrapDek(material, dek, ['a']);
    const parsed = parseWdek(w)!;
    const json = JSON.parse(Buffer.from(w, 'base64').toString()) as Record<string, string>;
    expect(Object.keys(json).sort()).toEqual(['ciphertext', 'handle', 'iv', 'version']);
    expect(json.version).toBe('4.0.0');
    expect(parsed.handle).toBe(handleOf(Buffer.from(material)));
    expect(parsed.iv).toHaveLength(12);
    expect(unwrapDek(material, parsed, ['a'])!.equals(dek)).toBe(true);
    expect(w).not.toContain(material.toString('base64'));
  });

  it('fails with other material or other AAD', () => {
    const material = randomBytes(32);
    const parsed = parseWdek(wrapDek(material, randomBytes(32), ['a']))!;
    expect(unwrapDek(randomBytes(32), parsed, ['a'])).toBeUndefined();
    expect(unwrapDek(material, parsed, ['b'])).toBeUndefined();
    expect(unwrapDek(material, parsed, undefined)).toBeUndefined();
  });

  it('rejects what is not a WDEK', () => {
    expect(parseWdek(randomBytes(40).toString('base64'))).toBeUndefined();
    expect(parseWdek(Buffer.from('{"ciphertext":"AA=="}').toString('base64'))).toBeUndefined();
  });
});

describe('error envelope', () => {
  it('has errorMsg with the code and one reason', () => {
    const body = new KpError(409, 'KEY_ROTATION_NOT_PERMITTED', 'once per hour', {
      target: { type: 'field', name: 'payload' },
    }).toBody();
    expect(body).toEqual({
      metadata: { collectionType: 'application/vnd.ibm.kms.error+json', collectionTotal: 1 },
      resources: [
        {
          errorMsg:
            "Conflict: Action could not be performed on key: Please see 'reasons' for more details (KEY_ROTATION_NOT_PERMITTED)",
          reasons: [
            {
              code: 'KEY_ROTATION_NOT_PERMITTED',
              message: 'once per hour',
              status: 409,
              moreInfo: 'https://cloud.ibm.com/apidocs/key-protect',
              target: { type: 'field', name: 'payload' },
            },
          ],
        },
      ],
    });
  });

  it('401 has no reasons', () => {
    const body = errorBody(401, 'UNAUTHORIZED_ERR', 'The user does not have access to the specified resource', {
      noReasons: true,
    }) as {
      resources: Array<Record<string, unknown>>;
    };
    expect(body.resources[0]).toEqual({
      errorMsg: 'Unauthorized: The user does not have access to the specified resource',
    });
  });
});

describe('CADF events', () => {
  it.each([
    ['kms.secrets.rotate', 204, 'warning'],
    ['kms.secrets.delete', 204, 'critical'],
    ['kms.secrets.create', 201, 'normal'],
    ['kms.secrets.wrap', 200, 'normal'],
    ['kms.secrets.read', 401, 'critical'],
    ['kms.secrets.wrap', 409, 'warning'],
    ['kms.secrets.delete', 409, 'warning'],
    ['kms.secrets.read', 404, 'normal'],
    ['kms.secrets.read', 503, 'critical'],
  ] as const)('%s with %i → %s', (action, status, severity) => {
    expect(severityOf(action, status)).toBe(severity);
  });

  it('formats eventTime as YYYY-MM-DDTHH:mm:ss.SS+0000', () => {
    expect(eventTime(Date.parse('2026-08-12T10:00:00.123Z'))).toBe('2026-08-12T10:00:00.12+0000');
  });

  it('drops secret-looking fields from request and response data', () => {
    const e = buildEvent({
      nowMs: 0,
      region: 'us-south',
      action: 'kms.secrets.unwrap',
      status: 200,
      correlationId: 'c',
      initiator: { iamId: 'IBMid-1', name: 'a', subType: 'User', address: '127.0.0.1', agent: 'x' },
      targetCrn: 'crn',
      targetName: 'k',
      logSourceCrn: 'crn::',
      requestData: { requestURI: '/x', payload: 'secret', encryptedNonce: 'n', iv: 'i' },
      responseData: { keyVersionId: 'v', plaintext: 'p', ciphertext: 'c' },
    });
    expect(e.requestData).toEqual({ requestURI: '/x' });
    expect(e.responseData).toEqual({ keyVersionId: 'v' });
    expect(e.initiator.typeURI).toBe('service/security/account/user');
    expect(e).toMatchObject({ outcome: 'success', reason: { reasonCode: 200, reasonType: 'OK' }, dataEvent: true });
  });
});
