import { createRequire } from 'node:module';
import type { Document } from 'yaml';

type Yaml = typeof import('yaml');
let yamlModule: Yaml | undefined;
/** `yaml` is loaded on first parse (~20 ms): commands that read no YAML file (`--help`, `status`) never pay for it. */
const yaml = (): Yaml => {
  yamlModule ??= createRequire(import.meta.url)('yaml') as Yaml;
  return yamlModule;
};

/** A parsed YAML document that can say where a path is (1-based line and column). */
export interface LocatedYaml {
  value: unknown;
  /** Position of the node at `path`, or of its nearest existing parent. */
  locate(path: readonly (string | number)[]): { line: number; col: number } | undefined;
  /** Syntax errors, already formatted as `line L, column C: message`. */
  syntaxErrors: string[];
}

/** Parses YAML (JSON is YAML too) keeping positions for error messages. */
export function parseLocatedYaml(text: string): LocatedYaml {
  const { isMap, isScalar, isSeq, LineCounter, parseDocument } = yaml();
  const lineCounter = new LineCounter();
  const doc: Document = parseDocument(text, { lineCounter, prettyErrors: true, uniqueKeys: true });
  const syntaxErrors = doc.errors.map((e) => {
    const p = e.linePos?.[0];
    const msg = e.message.split('\n')[0] ?? e.message;
    return p ? `line ${p.line}, column ${p.col}: ${msg}` : msg;
  });
  let value: unknown;
  if (!syntaxErrors.length) {
    try {
      value = doc.toJS({ maxAliasCount: 50 });
    } catch (err) {
      // an alias bomb (yaml refuses to expand it) is a defect of the file like a syntax error
      syntaxErrors.push(`too many aliases (${err instanceof Error ? err.message : String(err)})`);
    }
  }
  return {
    value,
    syntaxErrors,
    locate(path) {
      // walk from the root; a map entry is located at its key, a list item at the item
      let node: unknown = doc.contents;
      let pos: number | undefined = rangeStart(node);
      for (const part of path) {
        if (isMap(node)) {
          const pair = node.items.find((it) => (isScalar(it.key) ? it.key.value : it.key) === part);
          if (!pair) break;
          pos = rangeStart(pair.key) ?? rangeStart(pair.value) ?? pos;
          node = pair.value;
        } else if (isSeq(node) && typeof part === 'number') {
          const item = node.items[part];
          if (item === undefined) break;
          pos = rangeStart(item) ?? pos;
          node = item;
        } else break;
      }
      return pos === undefined ? undefined : lineCounter.linePos(pos);
    },
  };
}

/** `a.b[0].c` for messages. */
export function formatPath(path: readonly (string | number)[]): string {
  return path.reduce<string>(
    (acc, p) => (typeof p === 'number' ? `${acc}[${p}]` : acc ? `${acc}.${p}` : String(p)),
    '',
  );
}

function rangeStart(node: unknown): number | undefined {
  const r = (node as { range?: [number, number, number] } | null | undefined)?.range;
  return Array.isArray(r) ? r[0] : undefined;
}
