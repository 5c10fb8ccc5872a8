import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalJson } from '../../../src/lineage/index.js';

const fromBits = (hex: string): number => Buffer.from(hex, 'hex').readDoubleBE(0);

describe('canonicalJson', () => {
  it('matches the RFC 8785 §3.2.2 example', () => {
    // Arrange: the RFC's input, parsed as a JSON text
    const input = JSON.parse(
      '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],' +
        '"string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",' +
        '"literals": [null, true, false]}',
    );
    // Act
    const out = canonicalJson(input);
    // Assert
    expect(out).toBe(
      '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],' +
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}',
    );
  });

  it('sorts keys by UTF-16 code units (RFC 8785 §3.2.3)', () => {
    // Arrange
    const input = {
      '\u20ac': 'Euro Sign',
      '\r': 'Carriage Return',
      '\ufb33': 'Hebrew Letter Dalet With Dagesh',
      '1': 'One',
      '\ud83d\ude00': 'Emoji: Grinning Face',
      '\u0080': 'Control',
      '\u00f6': 'Latin Small Letter O With Diaeresis',
    };
    // Act
    const keys = Object.keys(JSON.parse(canonicalJson(input)));
    // Assert: JSON.parse keeps insertion order for these non-index keys except "1", so compare the raw text order
    const text = canonicalJson(input);
    const order = ['\\r', '1', '\u0080', '\u00f6', '\u20ac', '\ud83d\ude00', '\ufb33'].map((k) =>
      text.indexOf(`"${k}"`),
    );
    expect(order).toEqual([...order].sort((a, b) => a - b));
    expect(order.every((i) => i >= 0)).toBe(true);
    expect(keys).toHaveLength(7);
  });

  it.each([
    ['0000000000000000', '0'],
    ['8000000000000000', '0'],
    ['0000000000000001', '5e-324'],
    ['8000000000000001', '-5e-324'],
    ['7fefffffffffffff', '1.7976931348623157e+308'],
    ['ffefffffffffffff', '-1.7976931348623157e+308'],
    ['4340000000000000', '9007199254740992'],
    ['c340000000000000', '-9007199254740992'],
    ['4430000000000000', '295147905179352830000'],
    ['44b52d02c7e14af5', '9.999999999999997e+22'],
    ['44b52d02c7e14af6', '1e+23'],
    ['44b52d02c7e14af7', '1.0000000000000001e+23'],
    ['444b1ae4d6e2ef4e', '999999999999999700000'],
    ['444b1ae4d6e2ef4f', '999999999999999900000'],
    ['444b1ae4d6e2ef50', '1e+21'],
    ['3eb0c6f7a0b5ed8c', '9.999999999999997e-7'],
    ['3eb0c6f7a0b5ed8d', '0.000001'],
    ['41b3de4355555553', '333333333.3333332'],
    ['41b3de4355555554', '333333333.33333325'],
    ['41b3de4355555555', '333333333.3333333'],
    ['41b3de4355555556', '333333333.3333334'],
    ['41b3de4355555557', '333333333.33333343'],
    ['becbf647612f3696', '-0.0000033333333333333333'],
    ['43143ff3c1cb0959', '1424953923781206.2'],
  ])('serializes IEEE-754 %s as %s (RFC 8785 appendix B)', (bits, expected) => {
    // Arrange / Act / Assert
    expect(canonicalJson(fromBits(bits))).toBe(expected);
  });

  it.each([
    { case: 'NaN', value: Number.NaN, msg: /not finite/ },
    { case: 'Infinity', value: { a: Number.POSITIVE_INFINITY }, msg: /\$\.a: number Infinity/ },
    { case: 'lone high surrogate', value: 'x\ud800y', msg: /lone UTF-16 surrogate/ },
    { case: 'lone high surrogate at end', value: 'x\ud800', msg: /lone UTF-16 surrogate/ },
    { case: 'lone low surrogate', value: '\udc00', msg: /lone UTF-16 surrogate/ },
    { case: 'undefined array item', value: [1, undefined], msg: /\$\[1\]: undefined is not allowed/ },
    { case: 'top-level undefined', value: undefined, msg: /undefined is not a JSON value/ },
    { case: 'function', value: { f: () => 1 }, msg: /function is not a JSON value/ },
    { case: 'bigint', value: 1n, msg: /bigint/ },
    { case: 'symbol', value: Symbol('s'), msg: /symbol/ },
    { case: 'Date', value: { d: new Date(0) }, msg: /\$\.d: Date is not a plain object/ },
    { case: 'Buffer', value: [Buffer.from('x')], msg: /Buffer is not a plain object/ },
    { case: 'Map', value: new Map(), msg: /Map is not a plain object/ },
    { case: 'prototype without constructor', value: Object.create(Object.create(null)), msg: /unknown is not a plain/ },
  ])('rejects $case', ({ value, msg }) => {
    // Arrange / Act / Assert
    expect(() => canonicalJson(value)).toThrow(msg);
  });

  it('rejects cycles but accepts shared (acyclic) references', () => {
    // Arrange
    const shared = { x: 1 };
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    // Act / Assert
    expect(canonicalJson({ a: shared, b: [shared] })).toBe('{"a":{"x":1},"b":[{"x":1}]}');
    expect(() => canonicalJson(cyclic)).toThrow(/cycle/);
  });

  it('drops undefined properties, keeps paired surrogates and null-prototype objects', () => {
    // Arrange
    const bare = Object.assign(Object.create(null), { b: 2, a: 1 });
    // Act / Assert
    expect(canonicalJson({ z: undefined, y: [true, false, null], x: bare, w: '😀', v: -0 })).toBe(
      '{"v":0,"w":"😀","x":{"a":1,"b":2},"y":[true,false,null]}',
    );
  });

  it('is independent of key insertion order and round-trips through JSON.parse', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        // Arrange: the same data with keys inserted in reverse order
        const reversed = JSON.parse(JSON.stringify(v), (_k, val) =>
          val && typeof val === 'object' && !Array.isArray(val)
            ? Object.fromEntries(Object.entries(val).reverse())
            : val,
        );
        // Act
        const a = canonicalJson(v);
        // Assert
        expect(canonicalJson(reversed)).toBe(a);
        expect(canonicalJson(JSON.parse(a))).toBe(a);
      }),
      { numRuns: 300 },
    );
  });
});
