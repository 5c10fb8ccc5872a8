import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * The dependency tables of the README and docs/dependency-review.md name exactly the runtime dependencies of
 * package.json, at the versions package-lock.json installs.
 */
const root = resolve(import.meta.dirname, '../../..');
const read = (p: string) => readFileSync(join(root, p), 'utf8');
const pkg = JSON.parse(read('package.json')) as { dependencies: Record<string, string> };
const lock = JSON.parse(read('package-lock.json')) as { packages: Record<string, { version: string }> };

/** `| \`name\` | version | …` rows of the first table after `heading`. */
function tableRows(markdown: string, heading: string): Record<string, string> {
  const start = markdown.indexOf(heading);
  expect(start, heading).toBeGreaterThanOrEqual(0);
  const rows: Record<string, string> = {};
  let inTable = false;
  for (const line of markdown.slice(start).split('\n').slice(1)) {
    const m = /^\| `([^`]+)` \| ([0-9][^ |]*) \|/.exec(line);
    if (line.startsWith('|')) inTable = true;
    else if (inTable) break;
    if (m) rows[m[1] as string] = m[2] as string;
  }
  return rows;
}

const installed = Object.fromEntries(
  Object.keys(pkg.dependencies).map((name) => [name, lock.packages[`node_modules/${name}`]?.version]),
);

describe('dependency tables', () => {
  it('package.json pins exactly what package-lock.json installs', () => {
    expect(pkg.dependencies).toEqual(installed);
  });

  it.each([
    ['README.md', '### Dependencies'],
    ['docs/dependency-review.md', '### Direct runtime dependencies'],
  ])('%s lists every runtime dependency at its installed version', (file, heading) => {
    expect(tableRows(read(file), heading)).toEqual(installed);
  });

  it('one copy of the IBM SDK core and of axios', () => {
    const copies = (name: string) =>
      Object.entries(lock.packages)
        .filter(([p]) => p === `node_modules/${name}` || p.endsWith(`/node_modules/${name}`))
        .map(([, v]) => v.version);
    expect(copies('ibm-cloud-sdk-core')).toEqual([pkg.dependencies['ibm-cloud-sdk-core']]);
    expect(new Set(copies('axios')).size).toBe(1);
  });
});
