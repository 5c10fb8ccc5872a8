import { describe, expect, it } from 'vitest';
import { AppError, KeyMaterial, Sensitive } from '../../../src/core/index.js';
import {
  assertNoSecrets,
  checkDocId,
  checkLimit,
  decodeCursor,
  encode,
  encodeCursor,
  MAX_DOCUMENT_BYTES,
  padGeneration,
} from '../../../src/store/documents.js';

const codeOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
    return undefined;
  } catch (err) {
    return err instanceof AppError ? err.code : 'not-an-AppError';
  }
};

describe('encode', () => {
  it('wraps the value with index fields and a fresh write id, dropping undefined index fields', () => {
    // Arrange
    const data = { a: 1, nested: { list: [1, 'x'] }, gone: undefined };
    // Act
    const one = encode('thing', 'thing:1', data, { at: 5, none: undefined }, '3-abc');
    const two = encode('thing', 'thing:1', data);
    // Assert
    expect(one).toMatchObject({
      _id: 'thing:1',
      _rev: '3-abc',
      kind: 'thing',
      at: 5,
      data: { a: 1, nested: { list: [1, 'x'] } },
    });
    expect('none' in one).toBe(false);
    expect('gone' in (one.data as object)).toBe(false);
    expect(one.writeId).not.toBe(two.writeId);
    expect('_rev' in two).toBe(false);
  });

  it('copies the value, so later changes by the caller do not leak into what was written', () => {
    const data = { list: [1] };
    const doc = encode('thing', 'thing:2', data);
    data.list.push(2);
    expect(doc.data.list).toEqual([1]);
  });

  it.each([
    { case: 'leading underscore', id: '_design/x' },
    { case: 'slash', id: 'a/b' },
    { case: 'space', id: 'a b' },
    { case: 'empty', id: '' },
    { case: 'too long', id: `a${'b'.repeat(500)}` },
  ])('refuses the document id ($case)', ({ id }) => {
    expect(codeOf(() => checkDocId(id))).toBe('VALIDATION_FAILED');
  });

  it('refuses documents over the size limit with PAYLOAD_TOO_LARGE', () => {
    expect(codeOf(() => encode('thing', 'thing:big', { s: 'x'.repeat(MAX_DOCUMENT_BYTES) }))).toBe('PAYLOAD_TOO_LARGE');
    expect(codeOf(() => encode('thing', 'thing:ok', { s: 'x'.repeat(MAX_DOCUMENT_BYTES - 500) }))).toBeUndefined();
  });
});

describe('assertNoSecrets', () => {
  it.each([
    { case: 'key material', value: { m: KeyMaterial.fromBytes(Buffer.alloc(16, 1)) } },
    { case: 'Sensitive', value: { deep: [{ s: new Sensitive('x') }] } },
    { case: 'Buffer', value: { b: Buffer.from('x') } },
    { case: 'Uint8Array', value: { b: new Uint8Array(2) } },
    { case: 'secret-named field', value: { stage: { apiKey: 'k' } } },
    { case: 'nonce field', value: { nonce: 'n' } },
    { case: 'NaN', value: { n: Number.NaN } },
  ])('rejects $case', ({ value }) => {
    expect(codeOf(() => assertNoSecrets(value))).toBe('VALIDATION_FAILED');
  });

  it('names the offending path', () => {
    try {
      assertNoSecrets({ a: [{ token: 'x' }] });
      expect.unreachable();
    } catch (err) {
      expect((err as AppError).details.field).toBe('$.a[0].token');
    }
  });

  it('accepts ordinary documents, and secret-named fields that are empty', () => {
    expect(
      codeOf(() => assertNoSecrets({ ciphertext: 'abc', aad: ['g'], token: null, n: 1, ok: true })),
    ).toBeUndefined();
  });
});

describe('cursors and limits', () => {
  const isK = (v: unknown): v is { k: string } => typeof (v as { k?: unknown })?.k === 'string';

  it('round-trips an opaque cursor', () => {
    expect(decodeCursor(encodeCursor({ k: 'group:a' }), isK)).toEqual({ k: 'group:a' });
  });

  it.each(['', 'not base64 json', encodeCursor({ other: 1 }), 'x'.repeat(2000)])(
    'refuses a cursor it did not issue: %#',
    (c) => {
      expect(codeOf(() => decodeCursor(c, isK))).toBe('INVALID_CURSOR');
    },
  );

  it.each([0, -1, 1.5, 1001, Number.NaN])('refuses limit %s', (n) => {
    expect(codeOf(() => checkLimit(n))).toBe('VALIDATION_FAILED');
  });

  it('pads generations so that ids sort in order', () => {
    expect(padGeneration(7)).toBe('0000000007');
    expect([padGeneration(10), padGeneration(9)].sort()).toEqual([padGeneration(9), padGeneration(10)]);
  });
});
