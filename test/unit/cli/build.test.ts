/**
 * The shipped CLI (scripts/build-cli.mjs, run by `npm ci` as `prepare`): built into a temp directory, the modules
 * its entry loads at start must not include the heavy ones (IBM SDKs, the dev stack, YAML), which only the commands
 * that use them load; and the built `--help` runs.
 */
import { execFileSync } from 'node:child_process';
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
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

describe('bin/lockstep.js', () => {
  const root = resolve(import.meta.dirname, '../../..');
  const tree = mkdtempSync(join(tmpdir(), 'lockstep-bin-'));
  afterAll(() => rmSync(tree, { recursive: true, force: true }));
  const run = () => execFileSync(process.execPath, [join(tree, 'bin/lockstep.js')], { encoding: 'utf8' });

  it('runs the build while it is fresh, the sources (tsx) when a source is newer or the build is missing', () => {
    // Arrange: a checkout with its own bin, a "build" and a "source" that say which one ran
    mkdirSync(join(tree, 'bin'));
    mkdirSync(join(tree, 'dist/cli'), { recursive: true });
    mkdirSync(join(tree, 'src/cli'), { recursive: true });
    copyFileSync(join(root, 'bin/lockstep.js'), join(tree, 'bin/lockstep.js'));
    symlinkSync(join(root, 'node_modules'), join(tree, 'node_modules'));
    writeFileSync(join(tree, 'package.json'), '{"type":"module"}');
    writeFileSync(join(tree, 'src/cli/main.ts'), "process.stdout.write('sources' as string);\n");
    writeFileSync(join(tree, 'dist/cli/main.js'), "process.stdout.write('build');\n");
    const old = new Date(Date.now() - 60_000);
    utimesSync(join(tree, 'src/cli/main.ts'), old, old);
    const info = (builtAtMs: number) =>
      writeFileSync(join(tree, 'dist/cli/build-info.json'), JSON.stringify({ builtAtMs, inputs: ['src/cli/main.ts'] }));
    // Act + Assert
    info(Date.now());
    expect(run()).toBe('build');
    info(old.getTime() - 1_000); // the source changed after the build
    expect(run()).toBe('sources');
    rmSync(join(tree, 'dist/cli/build-info.json'));
    expect(run()).toBe('sources');
    info(Date.now());
    rmSync(join(tree, 'src'), { recursive: true }); // installed without sources: the build is all there is
    expect(run()).toBe('build');
  });
});
