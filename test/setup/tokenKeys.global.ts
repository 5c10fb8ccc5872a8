/**
 * vitest global setup: provides the RSA-4096 import-token key pairs to every test file (`inject('tokenKeyPairs')`,
 * see test/support/tokenKeys.ts). They are committed, TEST-ONLY fixtures (test/fixtures/import-token-keys.TEST-ONLY
 * .json): generating a pair costs 2–13 s of CPU on the 2-core CI machine, and a cache under node_modules did not
 * survive `npm ci`. Nothing outside test/ reads them (test/unit/fixtures.test.ts checks it); the real service and
 * the emulator in `npm start` generate their own.
 */
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';

type Pem = { publicKeyPem: string; privateKeyPem: string };
export const TOKEN_KEYS_FIXTURE = join(
  dirname(fileURLToPath(import.meta.url)),
  '../fixtures/import-token-keys.TEST-ONLY.json',
);

export default async function setup(project: TestProject): Promise<void> {
  const { pairs } = JSON.parse(await readFile(TOKEN_KEYS_FIXTURE, 'utf8')) as { pairs: Pem[] };
  if (!Array.isArray(pairs) || pairs.length < 4) throw new Error(`${TOKEN_KEYS_FIXTURE}: expected 4 key pairs`);
  project.provide('tokenKeyPairs', pairs);
}

declare module 'vitest' {
  export interface ProvidedContext {
    tokenKeyPairs: Pem[];
  }
}
