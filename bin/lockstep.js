#!/usr/bin/env node
// Launcher for `lockstep` (package.json "bin"). Runs the compiled CLI in dist/cli, which `npm ci` builds (the
// `prepare` script, scripts/build-cli.mjs). From a source checkout whose build is missing or older than one of its
// sources, it runs src/cli/main.ts through tsx instead (slower start; `npm run build` refreshes dist/cli).
import { readFileSync, statSync } from 'node:fs';

const at = (p) => new URL(`../${p}`, import.meta.url);

/** True when dist/cli exists and no source it was built from changed since (a few dozen stat calls, ~1 ms). */
function builtAndFresh() {
  let info;
  try {
    info = JSON.parse(readFileSync(at('dist/cli/build-info.json'), 'utf8'));
  } catch {
    return false;
  }
  try {
    statSync(at('src'));
  } catch {
    return true; // installed without sources: the build is all there is
  }
  try {
    return info.inputs.every((f) => statSync(at(f)).mtimeMs <= info.builtAtMs);
  } catch {
    return false; // a source file was removed: the build is stale
  }
}

if (builtAndFresh()) {
  await import('../dist/cli/main.js');
} else {
  if (process.stderr.isTTY)
    process.stderr.write('lockstep: dist/cli is missing or stale, running the sources (npm run build)\n');
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli/main.ts');
}
