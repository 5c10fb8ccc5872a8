/**
 * `GET /keys` query parameters beyond paging (§2.3): `state`, `extractable`, `search`, `filter`, `sort`.
 * Pure: the caller supplies each key's effective state and dates.
 */
import { KpError } from './errors.js';

/** What the list query reads of a key. */
export interface ListableKey {
  id: string;
  name: string;
  aliases: readonly string[];
  state: number;
  extractable: boolean;
  imported: boolean;
  creationMs: number;
  lastUpdateMs: number;
  lastRotateMs?: number;
  deletionMs?: number;
  expirationMs?: number;
}

export interface SearchQuery {
  query: string;
  scopes: Array<'name' | 'alias'>;
  not: boolean;
  exact: boolean;
}

const DATE_PROPS = {
  creationDate: (k: ListableKey) => k.creationMs,
  lastUpdateDate: (k: ListableKey) => k.lastUpdateMs,
  lastRotateDate: (k: ListableKey) => k.lastRotateMs,
  deletionDate: (k: ListableKey) => k.deletionMs,
  expirationDate: (k: ListableKey) => k.expirationMs,
} as const;
type DateProp = keyof typeof DATE_PROPS;

const SORT_FIELDS: Record<string, (k: ListableKey) => string | number | undefined> = {
  id: (k) => k.id,
  state: (k) => k.state,
  extractable: (k) => Number(k.extractable),
  imported: (k) => Number(k.imported),
  ...DATE_PROPS,
};

/** Largest key set a search may scan (§2.3) → 400 `KEY_SEARCH_TOO_BROAD`. */
export const MAX_SEARCH_SET = 5000;

const bad = (name: string, message: string) =>
  new KpError(400, 'INVALID_QUERY_PARAM_ERR', message, { target: { type: 'query_param', name } });

/** Parses `search` prefixes `not:`, `escape:`, `exact:`, `alias:`, `name:` (in any order, `escape:` ends them). */
export function parseSearch(raw: string): SearchQuery {
  let rest = raw;
  let not = false;
  let exact = false;
  const scopes = new Set<'name' | 'alias'>();
  for (;;) {
    const m = /^(not|escape|exact|alias|name):/.exec(rest);
    if (!m) break;
    rest = rest.slice(m[0].length);
    if (m[1] === 'escape') break;
    if (m[1] === 'not') not = true;
    else if (m[1] === 'exact') exact = true;
    else scopes.add(m[1] as 'name' | 'alias');
  }
  if (rest.length === 0) throw bad('search', "The query_param 'search' must be: a non-empty search term");
  return { query: rest, scopes: scopes.size ? [...scopes] : ['name', 'alias'], not, exact };
}

function matches(k: ListableKey, s: SearchQuery): boolean {
  const candidates = [...(s.scopes.includes('name') ? [k.name] : []), ...(s.scopes.includes('alias') ? k.aliases : [])];
  const q = s.query.toLowerCase();
  const hit = candidates.some((c) => (s.exact ? c === s.query : c.toLowerCase().includes(q)));
  return s.not ? !hit : hit;
}

type Predicate = (k: ListableKey) => boolean;

/** Parses `filter`: space-separated `prop=value` or `prop=op:value` (`lt|lte|gt|gte`), dates RFC 3339 (quotes optional), `none`. */
export function parseFilter(raw: string): { predicates: Predicate[]; props: Set<string> } {
  const predicates: Predicate[] = [];
  const props = new Set<string>();
  const re = /(\w+)=(?:(lt|lte|gt|gte):)?("[^"]*"|\S+)/g;
  const consumed = raw.replace(re, '').trim();
  if (consumed.length > 0)
    throw bad('filter', `The query_param 'filter' could not be parsed near '${consumed.slice(0, 40)}'`);
  for (const m of raw.matchAll(re)) {
    const [, prop = '', op, rawValue = ''] = m;
    const value = rawValue.replace(/^"|"$/g, '');
    props.add(prop);
    if (prop in DATE_PROPS) {
      const get = DATE_PROPS[prop as DateProp];
      if (value === 'none') {
        if (op) throw bad('filter', `The filter '${prop}=none' takes no operator`);
        predicates.push((k) => get(k) === undefined);
        continue;
      }
      const t = Date.parse(value);
      if (Number.isNaN(t)) throw bad('filter', `The filter '${prop}' needs an RFC 3339 date or none`);
      const cmp: Record<string, (a: number) => boolean> = {
        lt: (a) => a < t,
        lte: (a) => a <= t,
        gt: (a) => a > t,
        gte: (a) => a >= t,
        eq: (a) => Math.floor(a / 1000) === Math.floor(t / 1000),
      };
      const f = cmp[op ?? 'eq']!;
      predicates.push((k) => {
        const v = get(k);
        return v !== undefined && f(v);
      });
    } else if (prop === 'extractable') {
      if (op || (value !== 'true' && value !== 'false'))
        throw bad('filter', "The filter 'extractable' must be true or false");
      predicates.push((k) => k.extractable === (value === 'true'));
    } else if (prop === 'state') {
      if (op) throw bad('filter', "The filter 'state' takes no operator");
      const states = value.split(',').map(Number);
      if (states.some((s) => ![0, 1, 2, 3, 5].includes(s)))
        throw bad('filter', "The filter 'state' must list 0, 1, 2, 3 or 5");
      predicates.push((k) => states.includes(k.state));
    } else {
      throw bad('filter', `The filter property '${prop}' is not supported`);
    }
  }
  return { predicates, props };
}

/** Applies state/extractable/search/filter/sort to `keys`; returns the matching keys and the parsed search. */
export function queryKeys(
  keys: readonly ListableKey[],
  q: URLSearchParams,
): { keys: ListableKey[]; search?: SearchQuery } {
  const filterRaw = q.get('filter');
  const filter = filterRaw ? parseFilter(filterRaw) : { predicates: [], props: new Set<string>() };
  const stateRaw = q.get('state');
  const extractableRaw = q.get('extractable');
  if (filter.props.has('state') && stateRaw)
    throw bad('state', "Use 'state' either as a query_param or in 'filter', not both");
  if (filter.props.has('extractable') && extractableRaw) {
    throw bad('extractable', "Use 'extractable' either as a query_param or in 'filter', not both");
  }
  let states: number[] = [0, 1, 2, 3];
  if (stateRaw) {
    states = stateRaw.split(',').map((s) => Number(s.trim()));
    if (states.some((s) => ![0, 1, 2, 3, 5].includes(s))) {
      throw bad('state', "The query_param 'state' must be: a comma-separated list of 0, 1, 2, 3, 5");
    }
  } else if (filter.props.has('state')) {
    states = [0, 1, 2, 3, 5]; // the filter decides
  }
  let extractable: boolean | undefined;
  if (extractableRaw) {
    if (extractableRaw !== 'true' && extractableRaw !== 'false') {
      throw bad('extractable', "The query_param 'extractable' must be: true or false");
    }
    extractable = extractableRaw === 'true';
  }
  let out = keys.filter(
    (k) => states.includes(k.state) && (extractable === undefined || k.extractable === extractable),
  );
  out = out.filter((k) => filter.predicates.every((p) => p(k)));
  let search: SearchQuery | undefined;
  const searchRaw = q.get('search');
  if (searchRaw) {
    if (out.length > MAX_SEARCH_SET) {
      throw new KpError(
        400,
        'KEY_SEARCH_TOO_BROAD',
        `A search can scan at most ${MAX_SEARCH_SET} keys: narrow it with filters`,
        {
          target: { type: 'query_param', name: 'search' },
        },
      );
    }
    search = parseSearch(searchRaw);
    const s = search;
    out = out.filter((k) => matches(k, s));
  }
  const sortRaw = q.get('sort') || 'id';
  const desc = sortRaw.startsWith('-');
  const get = SORT_FIELDS[desc ? sortRaw.slice(1) : sortRaw];
  if (!get)
    throw bad(
      'sort',
      `The query_param 'sort' must be one of: ${Object.keys(SORT_FIELDS).join(', ')} (prefix - for descending)`,
    );
  const cmp = (a: ListableKey, b: ListableKey) => {
    const x = get(a);
    const y = get(b);
    if (x === y) return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
    if (x === undefined) return 1;
    if (y === undefined) return -1;
    const r = x < y ? -1 : 1;
    return desc ? -r : r;
  };
  return { keys: [...out].sort(cmp), ...(search ? { search } : {}) };
}
