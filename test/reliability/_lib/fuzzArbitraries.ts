/**
 * Arbitraries of bad input shared by the fuzz scenarios: malformed JSON, values of the wrong type, huge strings,
 * path traversal, header injection (CR/LF and other control characters), odd unicode, and forged or malformed key
 * CRNs. Each is built so that what it yields is bad by construction (checked where cheap), never accidentally valid.
 */
import fc from 'fast-check';

/** Text that `JSON.parse` refuses. */
export const malformedJsonText: fc.Arbitrary<string> = fc
  .oneof(
    fc.constantFrom(
      '{',
      '[',
      '{"id": "x",}',
      "{'id': 'x'}",
      '{"a": NaN}',
      '{"a": undefined}',
      '\uFEFF{}',
      '{"a": 1} // comment',
      '{"a": "unterminated}',
      '{"a": "\\x41"}',
      '{a: 1}',
      '[1, 2,,]',
      '"\u0000"',
      '{"a":1}{"b":2}',
      'null null',
      '01',
      '- 1',
      '{"a": 0x10}',
      'tru',
    ),
    // a valid document cut short
    fc
      .json()
      .filter((t) => t.length > 2)
      .map((t) => t.slice(0, Math.max(1, t.length - 1 - (t.length % 3)))),
    // a valid document with a stray character inside
    fc
      .tuple(fc.json(), fc.nat(), fc.constantFrom('}', ']', ',', ':', '"', "'", '\\', '\u0001'))
      .map(([t, i, c]) => t.slice(0, i % (t.length + 1)) + c + t.slice(i % (t.length + 1))),
    fc.string({ unit: 'binary', minLength: 1, maxLength: 40 }),
  )
  .filter((t) => {
    try {
      JSON.parse(t);
      return false;
    } catch {
      return true;
    }
  });

/** Any JSON value (including arrays of junk and deep objects). */
export const junkJson: fc.Arbitrary<unknown> = fc.jsonValue({ maxDepth: 4 });

/** A JSON value that is not a string (a wrong type where a string is expected). */
export const notAString: fc.Arbitrary<unknown> = junkJson.filter((v) => typeof v !== 'string');

/** A JSON value that is not a plain object. */
export const notAnObject: fc.Arbitrary<unknown> = junkJson.filter(
  (v) => v === null || typeof v !== 'object' || Array.isArray(v),
);

/** A long string: `min` to `min + spread` characters of a repeated pattern (cheap to build). */
export function hugeString(min: number, spread = 65_536): fc.Arbitrary<string> {
  return fc
    .tuple(fc.string({ minLength: 1, maxLength: 8 }), fc.nat({ max: spread }))
    .map(([unit, extra]) => unit.repeat(Math.ceil((min + extra) / unit.length)));
}

/** Path-traversal fragments, raw and encoded. */
export const traversal: fc.Arbitrary<string> = fc.constantFrom(
  '../../etc/passwd',
  '..%2f..%2fetc%2fpasswd',
  '..%2F..%2F',
  '%2e%2e%2f%2e%2e%2f',
  '..\\..\\windows\\win.ini',
  '....//....//',
  '%252e%252e%252f',
  '/etc/passwd',
  'C:\\Windows\\System32',
  '..%c0%af..%c0%af',
  '%00',
  '..;/',
  '.%2e/',
  '~/.ssh/id_rsa',
);

/** Characters that split or smuggle headers and lines. */
export const injectionChars = ['\r\n', '\n', '\r', '\u0000', '\u000b', '\u2028', '\u0085', '\u001b[31m'] as const;

/** A value carrying a header/line injection: text, an injection sequence, then a forged header or line. */
export const injectedValue: fc.Arbitrary<string> = fc
  .tuple(
    fc.string({ maxLength: 12 }),
    fc.constantFrom(...injectionChars),
    fc.constantFrom('Set-Cookie: session=evil', 'X-Forwarded-For: 1.2.3.4', 'Location: http://evil', '{"forged":true}'),
  )
  .map(([a, inj, b]) => `${a}${inj}${b}`);

/** Odd unicode: lone surrogates, combining marks, RTL overrides, full-width and zero-width characters. */
export const oddUnicode: fc.Arbitrary<string> = fc.oneof(
  fc.string({ unit: 'binary', minLength: 1, maxLength: 24 }),
  fc.constantFrom(
    '\ud800',
    '\udfff',
    'a\u0301\u0301\u0301',
    '\u202egnp.exe',
    'ｇｒｏｕｐ',
    'gr\u200boup',
    '💥🔑',
    '\uFFFF',
  ),
);

/** A lower-case hex string of `n` digits. */
export const hex = (n: number): fc.Arbitrary<string> =>
  fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: n, maxLength: n });

/** A random v4-shaped UUID (lower case). */
export const uuid: fc.Arbitrary<string> = fc.uuid({ version: 4 });

/** The parts of a key CRN a forgery starts from. */
export interface CrnParts {
  region: string;
  accountId: string;
  instanceId: string;
  keyId: string;
}

export const crnOf = (p: CrnParts, env = 'bluemix:public'): string =>
  `crn:v1:${env}:kms:${p.region}:a/${p.accountId}:${p.instanceId}:key:${p.keyId}`;

/**
 * CRNs that must never be taken for one of `managed`: a managed key's instance and key ids under another account or
 * in another region, malformed CRNs (missing or extra segments, traversal or huge ids, wrong service or resource
 * type), and well-formed CRNs of unknown keys.
 */
export function forgedCrn(managed: readonly CrnParts[]): fc.Arbitrary<string> {
  const member = fc.constantFrom(...managed);
  const otherAccount = fc
    .tuple(member, hex(32))
    .filter(([m, a]) => a !== m.accountId.toLowerCase())
    .map(([m, a]) => crnOf({ ...m, accountId: a }));
  const otherRegion = fc
    .tuple(member, fc.constantFrom('us-south', 'us-east', 'eu-de', 'eu-gb', 'jp-tok', 'au-syd'))
    .filter(([m, r]) => r !== m.region)
    .map(([m, r]) => crnOf({ ...m, region: r }));
  const malformed = fc.oneof(
    member.map((m) => crnOf(m).replace(':key:', ':secret:')),
    member.map((m) => crnOf(m).replace(':kms:', ':hs-crypto:')),
    member.map((m) => `${crnOf(m)}:extra`),
    member.map((m) => crnOf(m).replace(/:key:.*$/, ':key:')),
    fc.tuple(member, traversal).map(([m, t]) => crnOf({ ...m, keyId: t })),
    fc.tuple(member, traversal).map(([m, t]) => crnOf({ ...m, instanceId: t })),
    fc.tuple(member, fc.nat({ max: 4_000 })).map(([m, n]) => crnOf({ ...m, keyId: `${m.keyId}${'0'.repeat(n + 1)}` })),
    fc.tuple(member, injectedValue).map(([m, v]) => `${crnOf(m)}${v}`),
    member.map((m) => crnOf(m).replace('crn:v1:', 'crn:v2:')),
    member.map((m) => crnOf(m).replace(/:a\//, ':b/')),
    fc.string({ maxLength: 60 }),
  );
  const unknownKey = fc
    .record({
      region: fc.constantFrom('us-south', 'us-east', 'eu-de'),
      accountId: hex(32),
      instanceId: uuid,
      keyId: uuid,
    })
    .map((p) => crnOf(p));
  return fc.oneof(otherAccount, otherRegion, malformed, unknownKey);
}

/** Group ids that are not valid (upper case, too long, traversal, unicode, empty-ish, injection). */
export const invalidGroupId: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom('UPPER', '-lead', 'trail-', 'a_b', 'a.b', ' ', 'a'.repeat(64), 'grp%00', 'a--b-', '_'),
  traversal,
  oddUnicode,
  injectedValue,
  hugeString(70),
);

/** Well-formed group ids that name no group (prefixed so they never collide with a seeded one). */
export const unknownGroupId: fc.Arbitrary<string> = fc
  .string({ unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789'), minLength: 1, maxLength: 40 })
  .map((s) => `zz${s}`);
