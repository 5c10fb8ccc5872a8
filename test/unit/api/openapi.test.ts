import { describe, expect, it } from 'vitest';
import { buildOpenApiDocument } from '../../../src/api/index.js';
import { ERROR_CODES } from '../../../src/core/index.js';
import { createOpenApiValidator } from './support/openapiValidator.js';

type Op = {
  operationId?: string;
  security?: unknown[];
  responses: Record<string, { content?: Record<string, { schema: unknown }> }>;
};

describe('OpenAPI document', () => {
  const doc = buildOpenApiDocument('https://lockstep.example/api') as {
    openapi: string;
    servers: { url: string }[];
    paths: Record<string, Record<string, Op>>;
  };

  it('is OpenAPI 3.1 with the routes fixed in the design', () => {
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.servers).toEqual([{ url: 'https://lockstep.example/api' }]);
    const ops = Object.entries(doc.paths).flatMap(([p, o]) => Object.keys(o).map((m) => `${m.toUpperCase()} ${p}`));
    expect(ops.sort()).toEqual(
      [
        'GET /openapi.json',
        'GET /v1/groups',
        'GET /v1/groups/{groupId}',
        'GET /v1/groups/{groupId}/generations',
        'GET /v1/groups/{groupId}/generations/{n}',
        'GET /v1/versions/{keyVersionId}',
        'GET /v1/groups/{groupId}/proof',
        'GET /v1/export',
        'POST /v1/groups/{groupId}/rotations',
        'GET /v1/runs/{runId}',
        'POST /v1/runs/{runId}/retry',
        'POST /v1/runs/{runId}/stop',
        'POST /ui/runs/{runId}/retry',
        'POST /ui/runs/{runId}/stop',
        'GET /v1/groups/{groupId}/endpoints',
        'GET /v1/groups/{groupId}/drills',
        'POST /v1/groups/{groupId}/drills',
        'GET /v1/groups/{groupId}/evidence',
        'GET /ui',
        'GET /ui/groups/{groupId}',
        'POST /ui/login',
        'POST /ui/logout',
        'GET /ui/export',
      ].sort(),
    );
  });

  it('gives every /v1 operation an id, bearer security, 401/403 and an error schema', () => {
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        expect(op.operationId, `${method} ${path}`).toMatch(/^[a-zA-Z]+$/);
        if (!path.startsWith('/v1/')) continue;
        expect(op.security).toEqual([{ iamBearer: [] }]);
        expect(Object.keys(op.responses)).toEqual(expect.arrayContaining(['400', '401', '403', 'default']));
      }
    }
  });

  it('compiles every response schema (every $ref resolves)', () => {
    const { ajv } = createOpenApiValidator(doc);
    let compiled = 0;
    const esc = (s: string) => s.replace(/~/g, '~0').replace(/\//g, '~1');
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        for (const [status, res] of Object.entries(op.responses)) {
          for (const type of Object.keys(res.content ?? {})) {
            const ptr = `openapi.json#/paths/${esc(path)}/${method}/responses/${status}/content/${esc(type)}/schema`;
            expect(ajv.getSchema(ptr), ptr).toBeTypeOf('function');
            compiled++;
          }
        }
      }
    }
    expect(compiled).toBeGreaterThan(80);
  });

  it('lists every error code in the error schema', () => {
    const { ajv } = createOpenApiValidator(doc);
    const check = ajv.getSchema('openapi.json#/components/schemas/Error')!;
    for (const code of ERROR_CODES) expect(check({ error: { code, message: 'm' } })).toBe(true);
    expect(check({ error: { code: 'NOPE', message: 'm' } })).toBe(false);
  });

  describe('the response validator used by the API tests', () => {
    const v = createOpenApiValidator();
    const ok = { method: 'GET', path: '/v1/groups/alpha', headers: { 'content-type': 'application/json' } };

    it('rejects a body that does not match the schema', () => {
      expect(() => v.validate({ ...ok, statusCode: 200, body: JSON.stringify({ id: 'alpha' }) })).toThrow(
        /does not match its schema/,
      );
    });

    it('rejects an undocumented status, path, method or content type', () => {
      expect(() => v.validate({ ...ok, method: 'POST', statusCode: 200, body: '{}' })).toThrow(/not documented/);
      expect(() => v.validate({ ...ok, path: '/v9/x', statusCode: 200, body: '{}' })).toThrow(/not documented/);
      expect(() =>
        v.validate({ ...ok, statusCode: 404, headers: { 'content-type': 'text/html' }, body: '<p>' }),
      ).toThrow(/content type/);
      // every operation has a default response now: an unlisted status must still be a documented error body
      expect(() =>
        v.validate({ method: 'GET', path: '/openapi.json', statusCode: 418, headers: {}, body: '' }),
      ).toThrow();
      expect(() =>
        v.validate({
          method: 'GET',
          path: '/openapi.json',
          statusCode: 418,
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ error: { code: 'VALIDATION_FAILED', message: 'x' } }),
        }),
      ).not.toThrow();
    });

    it('accepts a documented error', () => {
      expect(() =>
        v.validate({
          ...ok,
          statusCode: 404,
          body: JSON.stringify({ error: { code: 'GROUP_NOT_FOUND', message: 'x' } }),
        }),
      ).not.toThrow();
    });
  });
});
