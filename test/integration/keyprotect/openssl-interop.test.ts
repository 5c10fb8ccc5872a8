/**
 * Interop of the secure-import seal with an independent RSA-OAEP implementation: OpenSSL's `pkeyutl`.
 * openssl must be installed at /usr/bin/openssl; without it these tests fail (they are never skipped).
 */
import { execFileSync } from 'node:child_process';
import {
  type CipherGCMTypes,
  constants,
  createDecipheriv,
  generateKeyPair,
  type KeyObject,
  privateDecrypt,
  randomBytes,
} from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KeyMaterial, Sensitive } from '../../../src/core/index.js';
import { sealForImport, toWireFields } from '../../../src/keyprotect/index.js';

const OPENSSL = '/usr/bin/openssl';
const OAEP_SHA256 = [
  '-pkeyopt',
  'rsa_padding_mode:oaep',
  '-pkeyopt',
  'rsa_oaep_md:sha256',
  '-pkeyopt',
  'rsa_mgf1_md:sha256',
];

function openssl(args: string[], input: Buffer): Buffer {
  return execFileSync(OPENSSL, args, { input, stdio: ['pipe', 'pipe', 'pipe'] });
}

function gcmOpen(key: Buffer, ivB64: string, sealedB64: string): Buffer {
  const sealed = Buffer.from(sealedB64, 'base64');
  const d = createDecipheriv(`aes-${key.length * 8}-gcm` as CipherGCMTypes, key, Buffer.from(ivB64, 'base64'));
  d.setAuthTag(sealed.subarray(-16));
  return Buffer.concat([d.update(sealed.subarray(0, -16)), d.final()]);
}

describe('secure import ⇄ openssl pkeyutl (RSA-4096, OAEP SHA-256 / MGF1 SHA-256)', () => {
  let dir: string;
  let publicPem: string;
  let privateKey: KeyObject;
  let pubPath: string;
  let privPath: string;

  beforeAll(async () => {
    if (!existsSync(OPENSSL)) {
      throw new Error(
        `openssl not found at ${OPENSSL}: install it (apt-get install openssl). This interop test must run, not skip.`,
      );
    }
    // one RSA-4096 pair for the whole file (~2 s), like a Key Protect import token's key
    const pair = await promisify(generateKeyPair)('rsa', { modulusLength: 4096 });
    privateKey = pair.privateKey;
    publicPem = pair.publicKey.export({ type: 'spki', format: 'pem' }) as string;
    dir = mkdtempSync(join(tmpdir(), 'lockstep-openssl-'));
    pubPath = join(dir, 'pub.pem');
    privPath = join(dir, 'priv.pem');
    writeFileSync(pubPath, publicPem);
    writeFileSync(privPath, privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, { mode: 0o600 });
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it.each([16, 24, 32])('a %i-byte payload sealed by openssl opens with our unseal-side check', (size) => {
    const material = randomBytes(size);
    const payload = openssl(['pkeyutl', '-encrypt', '-pubin', '-inkey', pubPath, ...OAEP_SHA256], material);
    expect(payload).toHaveLength(512);
    const opened = privateDecrypt(
      { key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' },
      payload,
    );
    expect(opened.equals(material)).toBe(true);
  });

  it.each([16, 24, 32])('a %i-byte payload sealed by our module decrypts with openssl pkeyutl -decrypt', (size) => {
    const raw = randomBytes(size);
    const nonce = randomBytes(12);
    const wire = toWireFields(
      sealForImport({
        token: { payload: Buffer.from(publicPem).toString('base64'), nonce: new Sensitive(nonce.toString('base64')) },
        material: KeyMaterial.fromBytes(raw),
        random: { bytes: (n) => randomBytes(n), uuid: () => 'u' },
      }),
    );
    const decrypted = openssl(
      ['pkeyutl', '-decrypt', '-inkey', privPath, ...OAEP_SHA256],
      Buffer.from(wire.payload, 'base64'),
    );
    expect(decrypted.equals(raw)).toBe(true);
    // the nonce part, opened by a node one-off with the material openssl recovered
    expect(gcmOpen(decrypted, wire.iv, wire.encryptedNonce).equals(nonce)).toBe(true);
  });

  it('openssl refuses our payload when told the OAEP digest is SHA-1 (the parameters are really checked)', () => {
    const wire = toWireFields(
      sealForImport({
        token: {
          payload: Buffer.from(publicPem).toString('base64'),
          nonce: new Sensitive(randomBytes(12).toString('base64')),
        },
        material: KeyMaterial.fromBytes(randomBytes(32)),
        random: { bytes: (n) => randomBytes(n), uuid: () => 'u' },
      }),
    );
    const sha1 = ['-pkeyopt', 'rsa_padding_mode:oaep', '-pkeyopt', 'rsa_oaep_md:sha1', '-pkeyopt', 'rsa_mgf1_md:sha1'];
    expect(() =>
      openssl(['pkeyutl', '-decrypt', '-inkey', privPath, ...sha1], Buffer.from(wire.payload, 'base64')),
    ).toThrow();
  });

  it('our unseal-side check refuses an openssl payload made with MGF1-SHA-1', () => {
    const mgf1sha1 = [
      '-pkeyopt',
      'rsa_padding_mode:oaep',
      '-pkeyopt',
      'rsa_oaep_md:sha256',
      '-pkeyopt',
      'rsa_mgf1_md:sha1',
    ];
    const payload = openssl(['pkeyutl', '-encrypt', '-pubin', '-inkey', pubPath, ...mgf1sha1], randomBytes(32));
    expect(() =>
      privateDecrypt({ key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, payload),
    ).toThrow();
  });
});
