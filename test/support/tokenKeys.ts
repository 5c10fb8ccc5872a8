/**
 * The committed TEST-ONLY RSA-4096 import-token key pairs (test/setup/tokenKeys.global.ts). Pass them to
 * emulators as `tokenKeyPairs` wherever a test does not examine key generation itself.
 */
import { inject } from 'vitest';
import { type ImportTokenKeyPair, importKeyPairs } from '../../src/local/kp-emulator/index.js';

let pairs: ImportTokenKeyPair[] | undefined;

export function testTokenKeyPairs(): ImportTokenKeyPair[] {
  pairs ??= importKeyPairs(inject('tokenKeyPairs'));
  return pairs;
}
