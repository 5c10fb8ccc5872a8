#!/usr/bin/env node
// Builds the `lockstep` CLI into dist/cli (ESM, one chunk per lazily loaded command; npm packages stay external).
// `npm ci` / `npm install` run it as the `prepare` script, so a fresh clone needs no separate build step.
// Writes dist/cli/build-info.json (build start time + source files) so bin/lockstep.js can tell a stale build.
import { mkdirSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Builds the CLI into `outdir` (default dist/cli); returns esbuild's metafile. */
export async function buildCli(outdir = join(root, 'dist', 'cli')) {
  const esbuild = await import('esbuild');
  const builtAtMs = Date.now();
  rmSync(outdir, { recursive: true, force: true });
  const result = await esbuild.build({
    absWorkingDir: root,
    entryPoints: ['src/cli/main.ts'],
    outdir,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    packages: 'external',
    sourcemap: 'linked',
    chunkNames: 'chunks/[name]-[hash]',
    metafile: true,
    logLevel: 'warning',
  });
  const inputs = Object.keys(result.metafile.inputs).filter((f) => !f.includes('node_modules/'));
  mkdirSync(outdir, { recursive: true });
  writeFileSync(join(outdir, 'build-info.json'), `${JSON.stringify({ builtAtMs, inputs }, null, 1)}\n`);
  return result.metafile;
}

// run as a script (not imported by a test): compare real paths, the checkout may sit behind a symlink
if (process.argv[1] && realpathSync(fileURLToPath(import.meta.url)) === realpathSync(process.argv[1])) {
  try {
    await import('esbuild');
  } catch {
    // an install without dev dependencies: bin/lockstep.js falls back to the sources
    console.warn('lockstep: esbuild is not installed; the CLI is not built (bin/lockstep.js runs the sources via tsx)');
    process.exit(0);
  }
  await buildCli();
}
