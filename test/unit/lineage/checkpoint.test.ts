import { createSecretKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { hasCode } from '../../../src/core/index.js';
import {
  checkpointKeyId,
  checkpointKeyPairFromSeed,
  checkpointKeyring,
  loadCheckpointPrivateKey,
  loadCheckpointPublicKey,
  signCheckpoint,
  verifyCheckpoint,
} from '../../../src/lineage/index.js';
import { GROUP, signerA, signerB, T0 } from './fixtures.js';

const HEAD = 'ab'.repeat(32);
const statement = { groupId: GROUP, generation: 4, headHash: HEAD, signedAtMs: T0 };
const pem = (k: KeyObject, type: 'pkcs8' | 'spki') => k.export({ format: 'pem', type }) as string;
const der64 = (k: KeyObject, type: 'pkcs8' | 'spki') =>
  (k.export({ format: 'der', type }) as Buffer).toString('base64');
// One small non-Ed25519 key pair for the wrong-type cases (EC P-256 is cheap to generate).
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });

describe('checkpoint keys', () => {
  it('derives the same pair from the same seed and different pairs from different seeds', () => {
    // Arrange / Act
    const again = checkpointKeyPairFromSeed(Buffer.alloc(32, 0xa1));
    // Assert
    expect(again.keyId).toBe(signerA.keyId);
    expect(signerA.keyId).not.toBe(signerB.keyId);
    expect(signerA.keyId).toMatch(/^[0-9a-f]{16}$/);
    expect(signerA.privateKey.asymmetricKeyType).toBe('ed25519');
  });

  it('matches the RFC 8032 test 1 public key for its seed', () => {
    // Arrange: RFC 8032 §7.1 TEST 1
    const seed = Buffer.from('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60', 'hex');
    // Act
    const { publicKey } = checkpointKeyPairFromSeed(seed);
    // Assert
    const raw = (publicKey.export({ format: 'der', type: 'spki' }) as Buffer).subarray(-32).toString('hex');
    expect(raw).toBe('d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a');
  });

  it.each([0, 31, 33])('rejects a %i-byte seed', (n) => {
    expect(() => checkpointKeyPairFromSeed(Buffer.alloc(n))).toThrow(/32 bytes/);
  });

  it.each<{ case: string; input: () => KeyObject | string }>([
    { case: 'KeyObject', input: () => signerA.privateKey },
    { case: 'PEM', input: () => pem(signerA.privateKey, 'pkcs8') },
    { case: 'PEM with whitespace', input: () => `\n  ${pem(signerA.privateKey, 'pkcs8')}  \n` },
    { case: 'base64 of PEM', input: () => Buffer.from(pem(signerA.privateKey, 'pkcs8')).toString('base64') },
    { case: 'base64 DER', input: () => der64(signerA.privateKey, 'pkcs8') },
  ])('loads a private key from $case', ({ input }) => {
    // Arrange / Act
    const key = loadCheckpointPrivateKey(input());
    // Assert
    expect(checkpointKeyId(key)).toBe(signerA.keyId);
  });

  it.each<{ case: string; input: () => KeyObject | string }>([
    { case: 'KeyObject', input: () => signerA.publicKey },
    { case: 'private KeyObject', input: () => signerA.privateKey },
    { case: 'PEM', input: () => pem(signerA.publicKey, 'spki') },
    { case: 'base64 of PEM', input: () => Buffer.from(pem(signerA.publicKey, 'spki')).toString('base64') },
    { case: 'base64 DER', input: () => der64(signerA.publicKey, 'spki') },
  ])('loads a public key from $case', ({ input }) => {
    // Arrange / Act
    const key = loadCheckpointPublicKey(input());
    // Assert
    expect(key.type).toBe('public');
    expect(checkpointKeyId(key)).toBe(signerA.keyId);
  });

  it.each<{ case: string; load: () => unknown; msg: RegExp }>([
    {
      case: 'a public key as signing key',
      load: () => loadCheckpointPrivateKey(signerA.publicKey),
      msg: /must be a private key/,
    },
    { case: 'an EC signing key', load: () => loadCheckpointPrivateKey(ec.privateKey), msg: /Ed25519 key, got ec/ },
    { case: 'EC PEM signing key', load: () => loadCheckpointPrivateKey(pem(ec.privateKey, 'pkcs8')), msg: /got ec/ },
    {
      case: 'garbage signing key',
      load: () => loadCheckpointPrivateKey('not a key'),
      msg: /not a PEM or base64 PKCS#8/,
    },
    { case: 'garbage public key', load: () => loadCheckpointPublicKey('@@@'), msg: /not a PEM or base64 SPKI/ },
    { case: 'an EC public key', load: () => loadCheckpointPublicKey(ec.publicKey), msg: /got ec/ },
    { case: 'a secret key', load: () => loadCheckpointPublicKey(createSecretKey(Buffer.alloc(32))), msg: /got secret/ },
  ])('rejects $case with CONFIG_INVALID', ({ load, msg }) => {
    // Arrange / Act
    let caught: unknown;
    try {
      load();
    } catch (err) {
      caught = err;
    }
    // Assert
    expect(hasCode(caught, 'CONFIG_INVALID')).toBe(true);
    expect((caught as Error).message).toMatch(msg);
  });

  it('builds a keyring keyed by derived ids', () => {
    // Arrange / Act
    const ring = checkpointKeyring([signerA.publicKey, pem(signerB.publicKey, 'spki')]);
    // Assert
    expect(Object.keys(ring).sort()).toEqual([signerA.keyId, signerB.keyId].sort());
  });
});

describe('signCheckpoint / verifyCheckpoint', () => {
  const ring = checkpointKeyring([signerA.publicKey]);

  it('signs deterministically over every field but the signature', () => {
    // Arrange / Act
    const cp = signCheckpoint(statement, { privateKey: signerA.privateKey, keyId: signerA.keyId });
    const again = signCheckpoint(statement, { privateKey: pem(signerA.privateKey, 'pkcs8') });
    // Assert
    expect(cp).toMatchObject({ ...statement, keyId: signerA.keyId, algorithm: 'Ed25519' });
    expect(Buffer.from(cp.signature, 'base64')).toHaveLength(64);
    expect(again).toEqual(cp);
    expect(verifyCheckpoint(cp, ring)).toBe('valid');
  });

  it.each<{ case: string; edit: Record<string, unknown>; expected: string }>([
    { case: 'generation', edit: { generation: 5 }, expected: 'bad-signature' },
    { case: 'headHash', edit: { headHash: 'cd'.repeat(32) }, expected: 'bad-signature' },
    { case: 'signedAtMs', edit: { signedAtMs: T0 + 1 }, expected: 'bad-signature' },
    { case: 'groupId', edit: { groupId: 'other' }, expected: 'bad-signature' },
    { case: 'algorithm', edit: { algorithm: 'RS256' }, expected: 'bad-signature' },
    { case: 'signature bytes', edit: { signature: Buffer.alloc(64, 7).toString('base64') }, expected: 'bad-signature' },
    { case: 'short signature', edit: { signature: 'AAAA' }, expected: 'bad-signature' },
    { case: 'missing signature', edit: { signature: undefined }, expected: 'bad-signature' },
    { case: 'non-JSON field', edit: { generation: Number.NaN }, expected: 'bad-signature' },
    { case: 'keyId', edit: { keyId: 'ffffffffffffffff' }, expected: 'unknown-key' },
  ])('detects a tampered $case', ({ edit, expected }) => {
    // Arrange
    const cp = { ...signCheckpoint(statement, { privateKey: signerA.privateKey }), ...edit };
    // Act / Assert
    expect(verifyCheckpoint(cp as never, ring)).toBe(expected);
  });

  it('reports a checkpoint re-signed with another key as unknown-key', () => {
    // Arrange
    const forged = signCheckpoint(statement, { privateKey: signerB.privateKey });
    // Act / Assert
    expect(verifyCheckpoint(forged, ring)).toBe('unknown-key');
  });

  it('reports another key that claims the trusted key id as bad-signature', () => {
    // Arrange
    const forged = { ...signCheckpoint(statement, { privateKey: signerB.privateKey }), keyId: signerA.keyId };
    // Act / Assert
    expect(verifyCheckpoint(forged, ring)).toBe('bad-signature');
  });

  it('does not trust inherited keyring properties', () => {
    // Arrange
    const cp = { ...signCheckpoint(statement, { privateKey: signerA.privateKey }), keyId: 'toString' };
    // Act / Assert
    expect(verifyCheckpoint(cp, ring)).toBe('unknown-key');
  });

  it.each<{ case: string; st: Record<string, unknown>; signer?: Record<string, unknown>; msg: RegExp }>([
    { case: 'bad group', st: { groupId: 'Bad!' }, msg: /Invalid groupId/ },
    { case: 'generation 0', st: { generation: 0 }, msg: /generation must be an integer >= 1/ },
    { case: 'short head hash', st: { headHash: 'abc' }, msg: /64 lower-case hex/ },
    { case: 'upper-case head hash', st: { headHash: 'AB'.repeat(32) }, msg: /64 lower-case hex/ },
    { case: 'negative time', st: { signedAtMs: -1 }, msg: /signedAtMs/ },
    { case: 'time beyond Date range', st: { signedAtMs: 8.64e15 + 1 }, msg: /signedAtMs/ },
    { case: 'fractional time', st: { signedAtMs: 1.5 }, msg: /signedAtMs/ },
    { case: 'wrong key id', st: {}, signer: { keyId: signerB.keyId }, msg: /does not belong to this key/ },
  ])('refuses to sign with $case', ({ st, signer, msg }) => {
    // Arrange / Act / Assert
    expect(() =>
      signCheckpoint({ ...statement, ...st } as never, { privateKey: signerA.privateKey, ...signer }),
    ).toThrow(msg);
  });

  it('raises CONFIG_INVALID when a trusted key is not Ed25519', () => {
    // Arrange
    const cp = signCheckpoint(statement, { privateKey: signerA.privateKey });
    // Act / Assert
    expect(() => verifyCheckpoint(cp, { [signerA.keyId]: ec.publicKey })).toThrow(/Ed25519/);
  });
});
