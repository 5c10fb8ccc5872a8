import { Ajv2020 } from 'ajv/dist/2020.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { buildOpenApiDocument, createApi } from '../../../src/api/index.js';
import { readInput } from '../../../src/api/input.js';
import { OPERATIONS, type OperationSpec } from '../../../src/api/operations.js';
import { assertSupported, checkValue, fromParamString, type Schema } from '../../../src/api/schema.js';
import { resolveSchema, SCHEMAS } from '../../../src/api/shapes.js';
import type { HttpRequest, Logger } from '../../../src/core/index.js';
import { createFakeStores } from './support/fakes.js';

const req = (over: Partial<HttpRequest> = {}): HttpRequest => ({
  method: 'GET',
  path: '/',
  query: {},
  headers: {},
  requestId: 'r1',
  ...over,
});
const codeOf = (fn: () => unknown) => {
  try {
    fn();
    return undefined;
  } catch (err) {
    return (err as { code?: string; details?: { field?: string } }).code;
  }
};

describe('input validation from the operation schemas', () => {
  it('reads typed, defaulted query and path values', () => {
    // Act
    const page = readInput(OPERATIONS.listGroups, req({ query: {} }), {});
    const gen = readInput(OPERATIONS.getGeneration, req(), { groupId: 'alpha', n: '12' });
    // Assert
    expect(page.query).toEqual({ limit: 50 });
    expect(readInput(OPERATIONS.listGroups, req({ query: { limit: '200' } }), {}).query.limit).toBe(200);
    expect(gen.path).toEqual({ groupId: 'alpha', n: 12 });
  });

  it.each([
    ['limit above the maximum', OPERATIONS.listGroups, { limit: '201' }, {}, 'limit', /from 1 to 200/],
    ['limit not a number', OPERATIONS.listGroups, { limit: 'ten' }, {}, 'limit', /integer/],
    ['a generation with a leading zero', OPERATIONS.getGeneration, {}, { groupId: 'a', n: '012' }, 'n', /integer/],
    ['a ten-digit generation', OPERATIONS.getGeneration, {}, { groupId: 'a', n: '1234567890' }, 'n', /1 to 999999999/],
    ['an upper-case group id', OPERATIONS.getGroup, {}, { groupId: 'Alpha' }, 'groupId', /lower-case/],
    ['an unknown format', OPERATIONS.exportLineage, { format: 'xml' }, {}, 'format', /jsonl, csv/],
    ['a missing format', OPERATIONS.exportLineage, {}, {}, 'format', /required/],
    ['an unknown query parameter', OPERATIONS.listGroups, { limt: '5' }, {}, 'limt', /accepts limit, cursor/],
  ])('refuses %s with VALIDATION_FAILED naming the field', (_case, op, query, path, field, message) => {
    const err = (() => {
      try {
        readInput(op as OperationSpec, req({ query }), path);
      } catch (e) {
        return e as { code: string; message: string; details: { field: string } };
      }
      throw new Error('accepted');
    })();
    expect(err.code).toBe('VALIDATION_FAILED');
    expect(err.details.field).toBe(field);
    expect(err.message).toMatch(message);
  });

  it('validates the JSON body: unknown fields, types, formula-like and control characters', () => {
    const post = (body: unknown, type = 'application/json') =>
      readInput(
        OPERATIONS.rotateNow,
        req({ method: 'POST', headers: { 'content-type': type }, body: Buffer.from(JSON.stringify(body)) }),
        { groupId: 'alpha' },
      );
    expect(post({ reason: 'quarterly', force: true }).body).toEqual({ reason: 'quarterly', force: true });
    expect(codeOf(() => post({ reason: '=HYPERLINK("x")' }))).toBe('VALIDATION_FAILED');
    expect(codeOf(() => post({ reason: 'a\u0007b' }))).toBe('VALIDATION_FAILED');
    expect(codeOf(() => post({ reason: 'x'.repeat(501) }))).toBe('VALIDATION_FAILED');
    expect(codeOf(() => post({ force: 'yes' }))).toBe('VALIDATION_FAILED');
    expect(codeOf(() => post({ reasn: 'typo' }))).toBe('VALIDATION_FAILED');
    expect(codeOf(() => post([1]))).toBe('VALIDATION_FAILED');
    expect(codeOf(() => post({}, 'text/plain'))).toBe('UNSUPPORTED_MEDIA_TYPE');
    expect(codeOf(() => post({ reason: 'x'.repeat(17_000) }))).toBe('PAYLOAD_TOO_LARGE');
  });

  it('refuses, up front, a schema keyword the interpreter does not enforce', () => {
    expect(() => assertSupported({ type: 'object', minProperties: 1 }, 'x')).toThrow(/minProperties/);
    expect(() => assertSupported({ type: 'array', items: { type: 'string', uniqueItems: true } }, 'x')).toThrow(
      /uniqueItems/,
    );
    for (const [name, schema] of Object.entries(SCHEMAS)) expect(() => assertSupported(schema, name)).not.toThrow();
  });
});

describe('the interpreter agrees with ajv (JSON Schema 2020-12) on every schema of the document', () => {
  const doc = buildOpenApiDocument();
  const ajv = new Ajv2020({ strict: false });
  ajv.addSchema(doc, 'openapi.json');
  const esc = (s: string) => s.replace(/~/g, '~0').replace(/\//g, '~1');
  const schemas: Array<[string, Schema, string]> = [
    ...Object.keys(SCHEMAS).map(
      (name) =>
        [name, resolveSchema(`#/components/schemas/${name}`), `openapi.json#/components/schemas/${name}`] as [
          string,
          Schema,
          string,
        ],
    ),
    ...(Object.values(OPERATIONS) as OperationSpec[]).flatMap((op) =>
      op.parameters.map(
        (p, i) =>
          [
            `${op.operationId} ${p.name}`,
            p.schema,
            `openapi.json#/paths/${esc(op.path)}/${op.method.toLowerCase()}/parameters/${i}/schema`,
          ] as [string, Schema, string],
      ),
    ),
  ];

  /** Values near the schema: strings for the parameters, mutated examples and arbitrary JSON for the rest. */
  const candidates = fc.oneof(
    fc.jsonValue({ maxDepth: 3 }),
    fc.string({ maxLength: 70 }),
    fc.constantFrom('alpha', 'run-alpha-create', '11111111-2222-3333-4444-555555555555', 'Ed25519', '=1', ''),
    fc.integer({ min: -5, max: 300 }),
    fc.constantFrom(null, true, [], {}, { error: { code: 'NOT_FOUND', message: 'm' } }),
  );

  it.each(schemas)('%s', (_name, schema, pointer) => {
    const check = ajv.getSchema(pointer);
    expect(check, pointer).toBeTypeOf('function');
    fc.assert(
      fc.property(candidates, (value) => {
        const ours = checkValue(schema, value, resolveSchema, 'v') === undefined;
        expect(ours, JSON.stringify(value)).toBe(check!(value));
      }),
      { numRuns: 150 },
    );
  });

  it('documents examples that match their schemas', () => {
    let examples = 0;
    for (const op of Object.values(OPERATIONS) as OperationSpec[]) {
      for (const [status, r] of Object.entries(op.responses) as [string, { example?: unknown }][]) {
        if (r.example === undefined) continue;
        const pointer = `openapi.json#/paths/${esc(op.path)}/${op.method.toLowerCase()}/responses/${status}/content/application~1json/schema`;
        const check = ajv.getSchema(pointer)!;
        expect(check(r.example), `${op.operationId} ${status}: ${ajv.errorsText(check.errors)}`).toBe(true);
        examples++;
      }
    }
    expect(examples).toBeGreaterThanOrEqual(9);
  });

  it('reads query strings as ajv would see the typed value', () => {
    expect(fromParamString({ type: 'integer' }, '42')).toBe(42);
    expect(fromParamString({ type: 'integer' }, '042')).toBe('042');
    expect(fromParamString({ type: 'boolean' }, 'true')).toBe(true);
    expect(fromParamString({ type: 'string' }, '42')).toBe('42');
  });
});

describe('routes and documented operations', () => {
  it('serves every documented operation with the documented query parameters, and nothing else', async () => {
    const logger: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => logger };
    const api = createApi({
      stores: createFakeStores(),
      auth: { jwksUrl: 'http://127.0.0.1:9/keys', issuer: 'test', roles: {} },
      checkpointPublicKeys: {},
      clock: { nowMs: () => 0 },
      logger,
    });
    for (const op of Object.values(OPERATIONS) as OperationSpec[]) {
      const path = op.path
        .replace('{groupId}', 'alpha')
        .replace('{n}', '1')
        .replace('{runId}', 'run-alpha-create')
        .replace('{keyVersionId}', '11111111-2222-3333-4444-555555555555');
      const res = await api(req({ method: op.method, path, query: { zzUnknown: '1' } }));
      const body = res.body.toString();
      const accepted = op.parameters.filter((p) => p.in === 'query').map((p) => p.name);
      expect(res.statusCode, `${op.method} ${op.path}: ${body.slice(0, 200)}`).toBe(400);
      expect(body, `${op.method} ${op.path}`).toContain(
        accepted.length ? `this route accepts ${accepted.join(', ')}` : 'this route takes none',
      );
    }
  });
});
