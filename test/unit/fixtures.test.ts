/**
 * The committed TEST-ONLY import-token key pairs (test/fixtures/import-token-keys.TEST-ONLY.json) stay test-only:
 * no shipped or benchmark file names the fixture or contains one of its keys.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TOKEN_KEYS_FIXTURE } from '../setup/tokenKeys.global.js';

const ROOT = resolve(import.meta.dirname, '../..');
const SHIPPED = ['src', 'functions', 'bin', 'scripts', 'plugins', 'bench', 'serverless.yml', 'package.json'];

function files(path: string): string[] {
  const abs = join(ROOT, path);
  if (!statSync(abs, { throwIfNoEntry: false })) return [];
  if (statSync(abs).isFile()) return [abs];
  return readdirSync(abs, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile() && !d.parentPath.includes('node_modules'))
    .map((d) => join(d.parentPath, d.name));
}

describe('TEST-ONLY token key fixture', () => {
  const { warning, pairs } = JSON.parse(readFileSync(TOKEN_KEYS_FIXTURE, 'utf8')) as {
    warning: string;
    pairs: Array<{ publicKeyPem: string; privateKeyPem: string }>;
  };

  it('is marked test-only and holds four RSA key pairs', () => {
    expect(warning).toMatch(/TEST-ONLY/);
    expect(pairs).toHaveLength(4);
    for (const p of pairs) expect(p.privateKeyPem).toMatch(/^-----BEGIN PRIVATE KEY-----/);
  });

  it('is named or contained by no file outside test/', () => {
    // a line from the middle of each private key: distinctive, and never a PEM header shared by every key
    const needles = ['import-token-keys', ...pairs.map((p) => p.privateKeyPem.split('\n')[5]!)];
    const offenders = SHIPPED.flatMap(files).filter((f) => {
      const text = readFileSync(f, 'utf8');
      return needles.some((n) => text.includes(n));
    });
    expect(offenders).toEqual([]);
  });
});
