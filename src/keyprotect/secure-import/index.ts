/**
 * Secure import for Key Protect import tokens: pure node:crypto, no HTTP, no clock; randomness injected.
 * @module
 */
export {
  ENCRYPTION_ALGORITHM,
  type EncryptionAlgorithm,
  GCM_IV_BYTES,
  type ImportTokenSecrets,
  MIN_RSA_MODULUS_BITS,
  NONCE_BYTES,
  parseImportPublicKey,
  type SealedImport,
  type SealForImportOptions,
  type SecureImportWireFields,
  sealForImport,
  toWireFields,
} from './sealForImport.js';
