/**
 * The shipped CLI (scripts/build-cli.mjs, run by `npm ci` as `prepare`): built into a temp directory, the modules
 * its entry loads at start must not include the heavy ones (IBM SDKs, the dev stack, YAML), which only the commands
 * that use them load; and the built `--help` runs.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error plain JS build script without types
import { buildCli } from '../../../scripts/build-cli.mjs';

// inside the repository (git-ignored dist/), so the external packages resolve from its node_modules
const dist = resolve(import.meta.dirname, '../../../dist');
mkdirSync(dist, { recursive: true });
const out = mkdtempSync(join(dist, 'cli-test-'));

/** Packages and chunks a module loads through static imports, transitively (what `node` evaluates at start). */
function staticGraph(entry: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const walk = (file: string) => {
    if (files.has(file)) return;
    files.add(file);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/^(?:import|export)\b[^;'"]*?(?:from\s*)?"([^"]+)"/gm)) {
      const target = m[1]!;
      if (target.startsWith('.')) walk(join(dirname(file), target));
      else packages.add(target);
    }
  };
  walk(entry);
  return { files, packages };
}

describe('the built CLI', () => {
  beforeAll(async () => {
    await buildCli(out);
  });
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it('loads no SDK, dev-stack or YAML module at start; the commands that need them load them', () => {
    const start = staticGraph(join(out, 'main.js'));
    expect([...start.packages].filter((p) => !p.startsWith('node:'))).toEqual(['commander']);
    // the heavy modules are in the bundle, behind dynamic imports
    const all = readFileSync(join(out, 'main.js'), 'utf8');
    expect(all).toMatch(/import\("\.\/chunks\/dev-[A-Z0-9]+\.js"\)/);
    const lazy = [...all.matchAll(/import\("(\.\/chunks\/[^"]+)"\)/g)].map((m) => join(out, m[1]!));
    const reached = new Set(lazy.flatMap((f) => [...staticGraph(f).packages]));
    for (const p of ['ibm-cloud-sdk-core', 'express']) expect([...reached].some((x) => x.startsWith(p))).toBe(true);
  });

  it('answers --help with the command list and exit 0', () => {
    const help = execFileSync(process.execPath, [join(out, 'main.js'), '--help'], { encoding: 'utf8' });
    expect(help).toMatch(/Usage: lockstep/);
    expect(help).toMatch(/history \[options\] <groupId>/);
  });
});
