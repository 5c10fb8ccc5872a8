/**
 * Bundles a test's child-process entry (TypeScript) with esbuild into one CommonJS file in a temporary directory: the
 * child then starts as plain `node <file>`, without tsx compiling the sources at every start.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';

export async function bundleChild(entry: string, name = 'child'): Promise<{ file: string; dispose(): void }> {
  const dir = mkdtempSync(join(tmpdir(), `lockstep-${name}-`));
  const file = join(dir, `${name}.cjs`);
  await build({
    entryPoints: [entry],
    outfile: file,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    logLevel: 'silent',
    legalComments: 'none',
    // Optional native/peer modules some SDKs probe for (as plugins/ibm-code-engine/build.ts).
    external: ['pg-native', 'encoding', 'bufferutil', 'utf-8-validate', 'supports-color'],
  });
  return { file, dispose: () => rmSync(dir, { recursive: true, force: true }) };
}
