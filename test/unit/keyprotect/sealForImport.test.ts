import {
  type CipherGCMTypes,
  constants,
  createDecipheriv,
  generateKeyPairSync,
  type KeyObject,
  privateDecrypt,
  randomBytes,
} from 'node:crypto';
import { inspect } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Random } from '../../../src/core/index.js';
import { KeyMaterial, Sensitive } from '../../../src/core/index.js';
import {
  ENCRYPTION_ALGORITHM,
  parseImportPublicKey,
  sealForImport,
  toWireFields,
} from '../../../src/keyprotect/secure-import/index.js';

/** A Random that hands out `iv` for 12-byte requests and counts calls. */
function fixedRandom(iv: Buffer): Random & { calls: number[] } {
  const calls: number[] = [];
  return {
    calls,
    bytes(n) {
      calls.push(n);
      return n === iv.length ? Buffer.from(iv) : Buffer.alloc(n, 7);
    },
    uuid: () => '00000000-0000-4000-8000-000000000000',
  };
}

const realRandom: Random = { bytes: (n) => randomBytes(n), uuid: () => 'x' };

/** base64 of the PEM SPKI, the way Key Protect puts it in `payload`. */
function tokenPayloadOf(publicKey: KeyObject): string {
  return Buffer.from(publicKey.export({ type: 'spki', format: 'pem' }) as string).toString('base64');
}

function gcmOpen(key: Buffer, ivB64: string, sealedB64: string): Buffer {
  const sealed = Buffer.from(sealedB64, 'base64');
  const decipher = createDecipheriv(`aes-${key.length * 8}-gcm` as CipherGCMTypes, key, Buffer.from(ivB64, 'base64'));
  decipher.setAuthTag(sealed.subarray(sealed.length - 16));
  return Buffer.concat([decipher.update(sealed.subarray(0, sealed.length - 16)), decipher.final()]);
}

// Vectors computed independently with Python `cryptography` (AESGCM(material).encrypt(iv, nonce, None)):
// material = bytes 1..n, nonce = bytes 0xa0..0xab, iv = bytes 0x10..0x1b.
const NONCE_B64 = 'oKGio6Slpqeoqaqr';
const IV = Buffer.from(Array.from({ length: 12 }, (_, i) => 0x10 + i));
const VECTORS = [
  { size: 16, encryptedNonce: 'zjXjBxov8cO9+cT0oigbNt9kZHggd0L5ld63nw==' },
  { size: 24, encryptedNonce: 'ivT6t4NJAimOrBmCho/qrmbiNa67558YnqQU8A==' },
  { size: 32, encryptedNonce: 'EkoYuy/eugLj+TUw5XX72BiJTjx8q1xIFr8iMA==' },
];

describe('sealForImport', () => {
  let rsa: { publicKey: KeyObject; privateKey: KeyObject };
  let payload: string;

  beforeAll(() => {
    rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    payload = tokenPayloadOf(rsa.publicKey);
  });

  describe('round trip', () => {
    it.each([16, 24, 32])(
      'seals %i-byte material: RSA-OAEP-SHA256 opens to the material, GCM opens to the nonce',
      (size) => {
        // Prepare
        const raw = randomBytes(size);
        const material = KeyMaterial.fromBytes(raw);
        const nonce = randomBytes(12);
        // Act
        const wire = toWireFields(
          sealForImport({
            token: { payload, nonce: new Sensitive(nonce.toString('base64')) },
            material,
            random: realRandom,
          }),
        );
        // Assess
        const opened = privateDecrypt(
          { key: rsa.privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' },
          Buffer.from(wire.payload, 'base64'),
        );
        expect(opened.equals(raw)).toBe(true);
        expect(Buffer.from(wire.payload, 'base64')).toHaveLength(256);
        expect(Buffer.from(wire.iv, 'base64')).toHaveLength(12);
        expect(Buffer.from(wire.encryptedNonce, 'base64')).toHaveLength(28);
        expect(gcmOpen(raw, wire.iv, wire.encryptedNonce).equals(nonce)).toBe(true);
        expect(wire.encryptionAlgorithm).toBe('RSAES_OAEP_SHA_256');
      },
    );

    it('does not accept a SHA-1 OAEP decryption (the hash really is SHA-256)', () => {
      const raw = randomBytes(32);
      const wire = toWireFields(
        sealForImport({
          token: { payload, nonce: new Sensitive(NONCE_B64) },
          material: KeyMaterial.fromBytes(raw),
          random: realRandom,
        }),
      );
      expect(() =>
        privateDecrypt(
          { key: rsa.privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' },
          Buffer.from(wire.payload, 'base64'),
        ),
      ).toThrow();
    });

    it('leaves the material usable (it is the caller who zeroes it)', () => {
      const material = KeyMaterial.fromBytes(randomBytes(32));
      sealForImport({ token: { payload, nonce: new Sensitive(NONCE_B64) }, material, random: realRandom });
      expect(material.isZeroed).toBe(false);
    });
  });

  describe('fixed vectors with an injected Random', () => {
    it.each(VECTORS)(
      '$size-byte material gives the independently computed encryptedNonce',
      ({ size, encryptedNonce }) => {
        // Prepare
        const material = KeyMaterial.fromBytes(Buffer.from(Array.from({ length: size }, (_, i) => i + 1)));
        const random = fixedRandom(IV);
        // Act
        const wire = toWireFields(
          sealForImport({ token: { payload, nonce: new Sensitive(NONCE_B64) }, material, random }),
        );
        // Assess
        expect(wire.iv).toBe('EBESExQVFhcYGRob');
        expect(wire.encryptedNonce).toBe(encryptedNonce);
        expect(random.calls).toEqual([12]);
      },
    );

    it('takes a fresh IV for every seal (never reused, never from the caller)', () => {
      const material = KeyMaterial.fromBytes(randomBytes(32));
      const token = { payload, nonce: new Sensitive(NONCE_B64) };
      const a = toWireFields(sealForImport({ token, material, random: realRandom }));
      const b = toWireFields(sealForImport({ token, material, random: realRandom }));
      expect(a.iv).not.toBe(b.iv);
      expect(a.encryptedNonce).not.toBe(b.encryptedNonce);
    });

    it('ignores an iv smuggled in by a caller', () => {
      const material = KeyMaterial.fromBytes(randomBytes(32));
      const callerIv = Buffer.alloc(12, 0x55).toString('base64');
      const opts = {
        token: { payload, nonce: new Sensitive(NONCE_B64), iv: callerIv },
        material,
        random: fixedRandom(IV),
        iv: callerIv,
      };
      const wire = toWireFields(sealForImport(opts));
      expect(wire.iv).toBe(IV.toString('base64'));
      expect(wire.iv).not.toBe(callerIv);
    });

    it('rejects a Random that returns the wrong number of bytes', () => {
      const material = KeyMaterial.fromBytes(randomBytes(32));
      const shortRandom: Random = { bytes: () => Buffer.alloc(8), uuid: () => 'x' };
      expect(() =>
        sealForImport({ token: { payload, nonce: new Sensitive(NONCE_B64) }, material, random: shortRandom }),
      ).toThrow(expect.objectContaining({ code: 'INTERNAL' }));
    });
  });

  describe('redaction', () => {
    it('prints every sealed value as [REDACTED] until revealed', () => {
      const sealed = sealForImport({
        token: { payload, nonce: new Sensitive(NONCE_B64) },
        material: KeyMaterial.fromBytes(randomBytes(32)),
        random: fixedRandom(IV),
      });
      const json = JSON.stringify(sealed);
      expect(json).toBe(
        JSON.stringify({
          payload: '[REDACTED]',
          encryptedNonce: '[REDACTED]',
          iv: '[REDACTED]',
          encryptionAlgorithm: ENCRYPTION_ALGORITHM,
        }),
      );
      const printed = `${inspect(sealed)} ${String(sealed.payload)} ${String(sealed.encryptedNonce)} ${sealed.iv}`;
      expect(printed).not.toContain(IV.toString('base64'));
      expect(printed).not.toContain(sealed.payload.reveal());
      expect(printed).not.toContain(sealed.encryptedNonce.reveal());
      expect(printed).toContain('[REDACTED]');
    });
  });

  describe('tampered or unsuitable tokens', () => {
    const material = () => KeyMaterial.fromBytes(randomBytes(32));
    const seal = (p: string, nonce = NONCE_B64) =>
      sealForImport({ token: { payload: p, nonce: new Sensitive(nonce) }, material: material(), random: realRandom });

    it('rejects an EC public key', () => {
      const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      expect(() => seal(tokenPayloadOf(ec.publicKey))).toThrow(
        expect.objectContaining({ code: 'VALIDATION_FAILED', details: expect.objectContaining({ reason: 'not_rsa' }) }),
      );
    });

    it('rejects an Ed25519 public key', () => {
      const ed = generateKeyPairSync('ed25519');
      expect(() => seal(tokenPayloadOf(ed.publicKey))).toThrow(
        expect.objectContaining({ details: expect.objectContaining({ field: 'token.payload', reason: 'not_rsa' }) }),
      );
    });

    it('rejects an RSA-PSS key (it cannot do OAEP)', () => {
      const pss = generateKeyPairSync('rsa-pss', { modulusLength: 2048 });
      expect(() => seal(tokenPayloadOf(pss.publicKey))).toThrow(
        expect.objectContaining({ details: expect.objectContaining({ reason: 'not_rsa' }) }),
      );
    });

    it('rejects an RSA key below 2048 bits', () => {
      const small = generateKeyPairSync('rsa', { modulusLength: 1024 });
      expect(() => seal(tokenPayloadOf(small.publicKey))).toThrow(
        expect.objectContaining({
          code: 'VALIDATION_FAILED',
          details: expect.objectContaining({ reason: 'rsa_too_small', modulusBits: 1024 }),
        }),
      );
    });

    it('rejects a PKCS#1 "RSA PUBLIC KEY" block (Key Protect sends SPKI)', () => {
      const pkcs1 = rsa.publicKey.export({ type: 'pkcs1', format: 'pem' }) as string;
      expect(() => seal(Buffer.from(pkcs1).toString('base64'))).toThrow(
        expect.objectContaining({ details: expect.objectContaining({ reason: 'not_spki_pem' }) }),
      );
    });

    it('rejects a private key in the payload (a public key is derivable from it, but it is not a token)', () => {
      const pem = rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
      expect(() => seal(Buffer.from(pem).toString('base64'))).toThrow(
        expect.objectContaining({ details: expect.objectContaining({ reason: 'not_spki_pem' }) }),
      );
    });

    it('rejects a corrupted key inside a well-formed PEM block', () => {
      const pem = (rsa.publicKey.export({ type: 'spki', format: 'pem' }) as string).replace(/MII[A-Za-z]/, 'MIIA');
      expect(() => seal(Buffer.from(pem).toString('base64'))).toThrow(
        expect.objectContaining({ details: expect.objectContaining({ reason: 'unparsable_key' }) }),
      );
    });

    it.each([
      ['not base64', 'not base64!!'],
      ['empty', ''],
      ['PEM text instead of base64 of PEM', '-----BEGIN PUBLIC KEY-----'],
      ['bad padding', 'QUJD='],
    ])('rejects a payload that is %s', (_case, bad) => {
      expect(() => seal(bad)).toThrow(
        expect.objectContaining({
          code: 'VALIDATION_FAILED',
          details: expect.objectContaining({ field: 'token.payload', reason: 'bad_base64' }),
        }),
      );
    });

    it.each([
      ['11 bytes', randomBytes(11).toString('base64')],
      ['16 bytes', randomBytes(16).toString('base64')],
      ['0 bytes', ''],
    ])('rejects a nonce of %s', (_case, nonce) => {
      expect(() => seal(payload, nonce)).toThrow(
        expect.objectContaining({
          code: 'VALIDATION_FAILED',
          details: expect.objectContaining({ field: 'token.nonce' }),
        }),
      );
    });

    it('rejects a nonce that is not base64', () => {
      expect(() => seal(payload, '%%%%%%%%%%%%%%%%')).toThrow(
        expect.objectContaining({ details: expect.objectContaining({ field: 'token.nonce', reason: 'bad_base64' }) }),
      );
    });

    it('rejects a nonce passed as a plain string from untyped code', () => {
      const token = { payload, nonce: NONCE_B64 } as unknown as { payload: string; nonce: Sensitive<string> };
      expect(() => sealForImport({ token, material: material(), random: realRandom })).toThrow(
        expect.objectContaining({ details: expect.objectContaining({ reason: 'not_sensitive' }) }),
      );
    });

    it('rejects zeroed material', () => {
      const m = material();
      m.zero();
      expect(() =>
        sealForImport({ token: { payload, nonce: new Sensitive(NONCE_B64) }, material: m, random: realRandom }),
      ).toThrow(expect.objectContaining({ code: 'INTERNAL' }));
    });

    it('error messages never echo the nonce or the payload', () => {
      const nonce = randomBytes(11).toString('base64');
      try {
        seal(payload, nonce);
        expect.unreachable();
      } catch (err) {
        expect(JSON.stringify(err)).not.toContain(nonce);
        expect(String((err as Error).message)).not.toContain(nonce);
      }
    });
  });

  describe('parseImportPublicKey', () => {
    it('returns the token public key itself (RSA-4096 is covered by the openssl interop test)', () => {
      const key = parseImportPublicKey(payload);
      expect(key.asymmetricKeyDetails?.modulusLength).toBe(2048);
      expect(key.export({ type: 'spki', format: 'der' })).toEqual(
        rsa.publicKey.export({ type: 'spki', format: 'der' }),
      );
    });
  });
});
