/** Builds one minified CommonJS bundle per function with esbuild and reports its size and what dominates it. */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Metafile, type Plugin } from 'esbuild';
import { INLINE_LIMIT_BYTES, parseHandler } from './config.js';

export interface BundleReport {
  function: string;
  entry: string;
  outFile: string;
  bytes: number;
  /** Size of the `data:text/plain;base64,…` URL the API would receive. */
  inlineBytes: number;
  mode: 'inline' | 'code-bundle';
  sha256: string;
  /** Largest contributors (npm package or first-party directory), bytes in the output. */
  top: Array<{ name: string; bytes: number }>;
}

function entryFor(serviceDir: string, handler: string): string {
  const { file } = parseHandler(handler);
  for (const ext of ['.ts', '.mts', '.js', '.mjs', '.cjs']) {
    const p = path.join(serviceDir, file + ext);
    if (existsSync(p)) return p;
  }
  throw new Error(`handler source not found for ${handler} (looked for ${file}.ts/.js)`);
}

function contributor(input: string): string {
  const nm = input.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = input.slice(nm + 'node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  return input.split('/').slice(0, 2).join('/');
}

function topContributors(meta: Metafile, limit = 6): Array<{ name: string; bytes: number }> {
  const sizes = new Map<string, number>();
  for (const out of Object.values(meta.outputs)) {
    for (const [input, info] of Object.entries(out.inputs)) {
      const key = contributor(input);
      sizes.set(key, (sizes.get(key) ?? 0) + info.bytesInOutput);
    }
  }
  return [...sizes.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, limit)
    .map(([name, bytes]) => ({ name, bytes }));
}

/**
 * Bundles `handler` (e.g. `functions/rotate.main`) into `<outDir>/<fn>/main.js`: platform node, CommonJS, target
 * node20 syntax, minified, everything inlined (no node_modules at runtime), `main` exported. Writes a
 * `package.json` next to it (what a Code Engine code bundle needs) and the esbuild metafile.
 */
/**
 * Swaps `mime-db` (the full IANA media-type table, 133 KB) for a few entries: the IBM SDKs load it via
 * `mime-types` only to name the content type of uploaded files, which lockstep never sends. Cuts parse time at
 * every cold start. (`psl`, 157 KB, is kept: tough-cookie uses it to refuse cookies set for a public suffix.)
 */
const smallMimeDb: Plugin = {
  name: 'lockstep-small-mime-db',
  setup(b) {
    // __dirname when the plugin runs compiled to CommonJS (index.cjs, under serverless); import.meta otherwise
    const here = typeof __dirname === 'string' ? __dirname : path.dirname(fileURLToPath(import.meta.url));
    const shim = path.join(here, 'shims', 'mime-db.cjs');
    b.onResolve({ filter: /^mime-db$/ }, () => ({ path: shim }));
  },
};

/**
 * Loads `psl` (157 KB of public-suffix rules) on first use instead of at start. tough-cookie (pulled in by the IBM
 * SDKs) requires it at module load but consults it only when a cookie jar handles a cookie, and lockstep's Cloudant
 * client keeps no cookies (src/store). Same rules and checks when it is used; no parse at every cold start.
 */
const lazyPsl: Plugin = {
  name: 'lockstep-lazy-psl',
  setup(b) {
    b.onLoad({ filter: /tough-cookie[\\/]lib[\\/]pubsuffix-psl\.js$/ }, async (args) => {
      const source = readFileSync(args.path, 'utf8');
      const eager = 'const psl = require("psl");';
      if (!source.includes(eager)) return undefined; // another tough-cookie layout: bundled as it is
      const lazy = 'let pslModule; const psl = { get: (domain) => (pslModule ??= require("psl")).get(domain) };';
      return { contents: source.replace(eager, lazy), loader: 'js' };
    });
  },
};

/** esbuild options of every function bundle (also used by bench/cold-start.ts, so it measures what deploys). */
export const BUNDLE_OPTIONS = {
  plugins: [smallMimeDb, lazyPsl],
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  minify: true,
  metafile: true,
  legalComments: 'none',
  logLevel: 'silent',
  // Optional native/peer modules some SDKs probe for; absent at runtime is fine.
  external: ['pg-native', 'encoding', 'bufferutil', 'utf-8-validate', 'supports-color'],
} as const;

export async function bundleFunction(opts: {
  serviceDir: string;
  outDir: string;
  fnKey: string;
  handler: string;
}): Promise<BundleReport> {
  const entry = entryFor(opts.serviceDir, opts.handler);
  const dir = path.join(opts.outDir, opts.fnKey);
  mkdirSync(dir, { recursive: true });
  const outFile = path.join(dir, 'main.js');
  const result = await build({
    ...BUNDLE_OPTIONS,
    plugins: [...BUNDLE_OPTIONS.plugins],
    external: [...BUNDLE_OPTIONS.external],
    entryPoints: [entry],
    outfile: outFile,
  });
  const code = readFileSync(outFile);
  writeFileSync(
    path.join(dir, 'package.json'),
    `${JSON.stringify({ name: `lockstep-${opts.fnKey}`, version: '0.0.0', private: true, main: 'main.js' }, null, 2)}\n`,
  );
  writeFileSync(path.join(dir, 'meta.json'), JSON.stringify(result.metafile));
  const inlineBytes = 'data:text/plain;base64,'.length + Math.ceil(code.length / 3) * 4;
  return {
    function: opts.fnKey,
    entry: path.relative(opts.serviceDir, entry),
    outFile,
    bytes: code.length,
    inlineBytes,
    mode: inlineBytes <= INLINE_LIMIT_BYTES ? 'inline' : 'code-bundle',
    sha256: createHash('sha256').update(code).digest('hex'),
    top: topContributors(result.metafile),
  };
}

/** Human-readable size. */
export function kb(bytes: number): string {
  return `${(bytes / 1024).toFixed(1)} KB`;
}
