/**
 * vitest global setup: makes a few RSA-4096 import-token key pairs once per test run and provides them to every
 * test file (`inject('tokenKeyPairs')`, see test/support/tokenKeys.ts). Generating a pair costs 2–13 s of CPU on
 * the 2-core CI machine; without this each test file's emulators generated their own, and a loaded machine made
 * requests wait on generation. Cached under node_modules/.cache so repeated local runs skip the generation.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';
import { exportKeyPairs, generateKeyPairs } from '../../src/local/kp-emulator/index.js';

type Pem = { publicKeyPem: string; privateKeyPem: string };
const COUNT = 4;
const cacheFile = join(
  dirname(fileURLToPath(import.meta.url)),
  '../../node_modules/.cache/lockstep-test/token-keys.json',
);

async function cached(): Promise<Pem[] | undefined> {
  try {
    const pems = JSON.parse(await readFile(cacheFile, 'utf8')) as Pem[];
    return Array.isArray(pems) && pems.length >= COUNT ? pems : undefined;
  } catch {
    return undefined;
  }
}

export default async function setup(project: TestProject): Promise<void> {
  let pems = await cached();
  if (!pems) {
    pems = exportKeyPairs(await generateKeyPairs(COUNT));
    await mkdir(dirname(cacheFile), { recursive: true });
    const tmp = `${cacheFile}.${process.pid}`;
    await writeFile(tmp, JSON.stringify(pems), { mode: 0o600 });
    await rename(tmp, cacheFile);
  }
  project.provide('tokenKeyPairs', pems);
}

declare module 'vitest' {
  export interface ProvidedContext {
    tokenKeyPairs: Pem[];
  }
}
