import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildOpenApiDocument } from '../../../src/api/index.js';

/**
 * IBM's OpenAPI ruleset (`@ibm-cloud/openapi-ruleset`, run by `@stoplight/spectral-cli` with the repository's
 * `.spectral.yaml`) over the document `/openapi.json` serves: no errors. Warnings are printed, not counted.
 */
const root = resolve(import.meta.dirname, '../../..');
const spectral = join(root, 'node_modules/.bin/spectral');
const dir = mkdtempSync(join(tmpdir(), 'lockstep-spectral-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Finding {
  code: string;
  message: string;
  severity: number;
  path: string[];
  source: string;
}

/** Lints the documents with one spectral run (it starts in ~2 s); findings by file name. */
async function lint(docs: Record<string, unknown>): Promise<Record<string, Finding[]>> {
  const files = Object.entries(docs).map(([name, doc]) => {
    const file = join(dir, name);
    writeFileSync(file, JSON.stringify(doc, null, 2));
    return file;
  });
  // spectral exits 1 when it reports errors; the JSON report is on stdout either way
  const out = await promisify(execFile)(
    spectral,
    ['lint', '--ruleset', join(root, '.spectral.yaml'), '--format', 'json', '--quiet', ...files],
    { cwd: root, timeout: 60_000, maxBuffer: 16 * 1024 * 1024 },
  ).catch((err: { stdout?: string; stderr?: string }) => {
    if (!err.stdout) throw new Error(`spectral failed: ${err.stderr ?? String(err)}`);
    return { stdout: err.stdout };
  });
  const findings = JSON.parse(out.stdout) as Finding[];
  return Object.fromEntries(
    Object.keys(docs).map((name) => [name, findings.filter((f) => f.source === join(dir, name))]),
  );
}

const SEVERITY = ['error', 'warn', 'info', 'hint'];
const summary = (fs: Finding[]) =>
  fs.map((f) => `${SEVERITY[f.severity]} ${f.code} ${f.path.join('.')}: ${f.message}`).join('\n');

describe("IBM's OpenAPI ruleset over /openapi.json", () => {
  let results: Record<string, Finding[]>;
  beforeAll(async () => {
    // a copy with one integer stripped of its bounds and format: proves the ruleset is loaded and reports errors
    const broken = buildOpenApiDocument('https://lockstep.example') as {
      components: { schemas: Record<string, { properties: Record<string, unknown> }> };
    };
    (broken.components.schemas.Group as { properties: Record<string, unknown> }).properties.currentGeneration = {
      type: 'integer',
      description: 'no bounds, no format',
    };
    results = await lint({ 'openapi.json': buildOpenApiDocument('https://lockstep.example'), 'broken.json': broken });
  }, 60_000);

  it('reports no errors', () => {
    const findings = results['openapi.json'] ?? [];
    const errors = findings.filter((f) => f.severity === 0);
    expect(errors, summary(errors)).toEqual([]);
    const warnings = findings.filter((f) => f.severity === 1);
    console.info(`[spectral] ${warnings.length} warnings (IBM ruleset)\n${summary(warnings)}`);
  });

  it('is live: an integer without bounds or format is an error', () => {
    const codes = (results['broken.json'] ?? []).filter((f) => f.severity === 0).map((f) => f.code);
    expect(codes).toEqual(['ibm-integer-attributes', 'ibm-integer-attributes', 'ibm-integer-attributes']);
  });
});
