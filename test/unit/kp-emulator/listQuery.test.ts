/** `GET /keys` query semantics (§2.3): state, extractable, search, filter, sort. */
import { describe, expect, it } from 'vitest';
import { KpError } from '../../../src/local/kp-emulator/errors.js';
import { type ListableKey, parseSearch, queryKeys } from '../../../src/local/kp-emulator/listQuery.js';

const t = (iso: string) => Date.parse(iso);
const keys: ListableKey[] = [
  {
    id: 'a',
    name: 'orders-crk',
    aliases: ['orders'],
    state: 1,
    extractable: false,
    imported: true,
    creationMs: t('2026-01-01T00:00:00Z'),
    lastUpdateMs: t('2026-01-02T00:00:00Z'),
    lastRotateMs: t('2026-01-02T00:00:00Z'),
  },
  {
    id: 'b',
    name: 'payments',
    aliases: ['pay-crk'],
    state: 2,
    extractable: false,
    imported: false,
    creationMs: t('2026-02-01T00:00:00Z'),
    lastUpdateMs: t('2026-02-01T00:00:00Z'),
  },
  {
    id: 'c',
    name: 'std',
    aliases: [],
    state: 1,
    extractable: true,
    imported: false,
    creationMs: t('2026-03-01T00:00:00Z'),
    lastUpdateMs: t('2026-03-01T00:00:00Z'),
  },
  {
    id: 'd',
    name: 'old-orders',
    aliases: [],
    state: 5,
    extractable: false,
    imported: true,
    creationMs: t('2025-12-01T00:00:00Z'),
    lastUpdateMs: t('2026-01-05T00:00:00Z'),
    deletionMs: t('2026-01-05T00:00:00Z'),
  },
];
const ids = (query: string) => queryKeys(keys, new URLSearchParams(query)).keys.map((k) => k.id);
const code = (query: string) => {
  try {
    ids(query);
    return 'OK';
  } catch (err) {
    return (err as KpError).code;
  }
};

describe('list keys query', () => {
  it.each([
    ['', ['a', 'b', 'c']],
    ['state=5', ['d']],
    ['state=1,5', ['a', 'c', 'd']],
    ['extractable=true', ['c']],
    ['search=orders', ['a']],
    ['search=orders&state=1,5', ['a', 'd']],
    ['search=not:orders', ['b', 'c']],
    ['search=exact:orders', ['a']],
    ['search=exact:name:orders', []],
    ['search=alias:crk', ['b']],
    ['search=escape:not:x', []],
    ['filter=lastRotateDate=none', ['b', 'c']],
    ['filter=creationDate=gte:"2026-02-01T00:00:00Z"', ['b', 'c']],
    ['filter=creationDate=lt:2026-02-01T00:00:00Z extractable=false', ['a']],
    ['filter=state=5', ['d']],
    ['sort=-creationDate', ['c', 'b', 'a']],
    ['sort=lastRotateDate', ['a', 'b', 'c']],
  ])('%s → %j', (query, expected) => {
    expect(ids(query)).toEqual(expected);
  });

  it.each([
    ['state=4', 'INVALID_QUERY_PARAM_ERR'],
    ['sort=name', 'INVALID_QUERY_PARAM_ERR'],
    ['filter=state=1&state=1', 'INVALID_QUERY_PARAM_ERR'],
    ['filter=color=red', 'INVALID_QUERY_PARAM_ERR'],
    ['filter=creationDate=gt:yesterday', 'INVALID_QUERY_PARAM_ERR'],
    ['search=not:', 'INVALID_QUERY_PARAM_ERR'],
  ])('%s → %s', (query, expected) => {
    expect(code(query)).toBe(expected);
  });

  it('search over more than 5000 keys → KEY_SEARCH_TOO_BROAD', () => {
    const many = Array.from({ length: 5001 }, (_, i) => ({ ...keys[0]!, id: `k${i}` }));
    expect(() => queryKeys(many, new URLSearchParams('search=x'))).toThrow(KpError);
    expect(() => queryKeys(many, new URLSearchParams('search=x'))).toThrow(/5000/);
  });

  it('parses search prefixes into the searchQuery metadata', () => {
    expect(parseSearch('not:exact:alias:orders')).toEqual({
      query: 'orders',
      scopes: ['alias'],
      not: true,
      exact: true,
    });
  });
});
