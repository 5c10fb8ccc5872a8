/**
 * Emulator crypto: the WDEK format (emulator-specific, §5.4) and server-side secure-import verification (§3.2).
 */
import {
  constants,
  createCipheriv,
  createDecipheriv,
  createHmac,
  type KeyObject,
  privateDecrypt,
  randomBytes,
  timingSafeEqual,
} from 'node:crypto';

/** Public handle of a material: base64url(HMAC-SHA256(material, label))[:22]. Equal material ⇒ equal handle in every instance. */
export function handleOf(material: Buffer): string {
  return createHmac('sha256', material).update('kp-emu-handle').digest('base64url').slice(0, 22);
}

function gcmAlgorithm(material: Buffer): 'aes-128-gcm' | 'aes-192-gcm' | 'aes-256-gcm' {
  if (material.length === 16) return 'aes-128-gcm';
  if (material.length === 24) return 'aes-192-gcm';
  if (material.length === 32) return 'aes-256-gcm';
  throw new Error(`unsupported root key size ${material.length}`);
}

/** Canonical AAD bytes: JSON of the array (absent = empty array). */
export function aadBytes(aad: readonly string[] | undefined): Buffer {
  return Buffer.from(JSON.stringify(aad ?? []), 'utf8');
}

/** The emulator's WDEK: base64(JSON{ciphertext: b64(ct||tag), iv: b64(12 bytes), version: "4.0.0", handle}). */
export interface Wdek {
  ciphertext: string;
  iv: string;
  version: string;
  handle: string;
}

/** Wraps `dek` under `material` with AES-GCM (key size from the material) and the canonical AAD. */
export function wrapDek(material: Buffer, dek: Buffer, aad: readonly string[] | undefined): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv(gcmAlgorithm(material), material, iv);
  cipher.setAAD(aadBytes(aad));
  const ct = Buffer.concat([cipher.update(dek), cipher.final(), cipher.getAuthTag()]);
  const wdek: Wdek = {
    ciphertext: ct.toString('base64'),
    iv: iv.toString('base64'),
    version: '4.0.0',
    handle: handleOf(material),
  };
  return Buffer.from(JSON.stringify(wdek), 'utf8').toString('base64');
}

/** Parses a WDEK; undefined when it is not one of ours. */
export function parseWdek(b64: string): { ct: Buffer; iv: Buffer; handle: string } | undefined {
  try {
    const j = JSON.parse(Buffer.from(b64, 'base64').toString('utf8')) as Partial<Wdek>;
    if (typeof j.ciphertext !== 'string' || typeof j.iv !== 'string' || typeof j.handle !== 'string') return undefined;
    const ct = Buffer.from(j.ciphertext, 'base64');
    const iv = Buffer.from(j.iv, 'base64');
    if (ct.length < 17 || iv.length !== 12) return undefined;
    return { ct, iv, handle: j.handle };
  } catch {
    return undefined;
  }
}

/** AES-GCM open; undefined on authentication failure. */
export function unwrapDek(
  material: Buffer,
  w: { ct: Buffer; iv: Buffer },
  aad: readonly string[] | undefined,
): Buffer | undefined {
  try {
    const decipher = createDecipheriv(gcmAlgorithm(material), material, w.iv);
    decipher.setAAD(aadBytes(aad));
    decipher.setAuthTag(w.ct.subarray(w.ct.length - 16));
    return Buffer.concat([decipher.update(w.ct.subarray(0, w.ct.length - 16)), decipher.final()]);
  } catch {
    return undefined;
  }
}

/** RSA-OAEP (SHA-256, MGF1-SHA-256, empty label) decrypt; undefined on failure. */
export function oaepDecrypt(privateKey: KeyObject, ct: Buffer, hash: 'sha256' | 'sha1' = 'sha256'): Buffer | undefined {
  try {
    return privateDecrypt({ key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash }, ct);
  } catch {
    return undefined;
  }
}

/** AES-GCM open of the encrypted nonce (ct||tag) with key = material; undefined on failure. */
export function openNonce(material: Buffer, iv: Buffer, encryptedNonce: Buffer): Buffer | undefined {
  if (encryptedNonce.length < 17 || iv.length === 0) return undefined;
  try {
    const decipher = createDecipheriv(gcmAlgorithm(material), material, iv);
    decipher.setAuthTag(encryptedNonce.subarray(encryptedNonce.length - 16));
    return Buffer.concat([decipher.update(encryptedNonce.subarray(0, encryptedNonce.length - 16)), decipher.final()]);
  } catch {
    return undefined;
  }
}

/** Constant-time buffer equality. */
export function sameBytes(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Strict base64 decode (standard or url alphabet, padding optional); undefined when not base64. */
export function decodeBase64(s: unknown): Buffer | undefined {
  if (typeof s !== 'string') return undefined;
  const t = s.trim();
  if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(t) || t.length % 4 === 1) return undefined;
  return Buffer.from(t.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
}
