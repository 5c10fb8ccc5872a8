import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { buildOpenApiDocument } from '../../../../src/api/index.js';

type Doc = {
  paths: Record<
    string,
    Record<
      string,
      { responses: Record<string, { content?: Record<string, unknown>; headers?: Record<string, unknown> }> }
    >
  >;
};

const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => void;

export interface ValidatedResponse {
  method: string;
  /** Actual path, without query. */
  path: string;
  statusCode: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * Validates responses against the served OpenAPI document: the operation and status must be documented, the content
 * type must be one the document lists, and JSON bodies must match the response schema. Records what it saw.
 */
export function createOpenApiValidator(doc: Record<string, unknown> = buildOpenApiDocument()) {
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats(ajv);
  ajv.addSchema(doc, 'openapi.json');
  const paths = (doc as unknown as Doc).paths;
  const templates = Object.keys(paths).map((tpl) => ({
    tpl,
    re: new RegExp(`^${tpl.replace(/\{[^}]+\}/g, '[^/]+')}$`),
  }));
  const seen = new Set<string>();
  const esc = (s: string) => s.replace(/~/g, '~0').replace(/\//g, '~1');

  function validate(res: ValidatedResponse): void {
    const path = res.path.split('?')[0] as string;
    const match = templates.find((t) => t.re.test(path));
    if (!match) throw new Error(`OpenAPI: path ${path} is not documented`);
    const method = res.method.toLowerCase();
    const op = paths[match.tpl]?.[method];
    if (!op) {
      // 404/405 for undocumented methods come from the router itself; they must still be error-shaped JSON
      if (res.statusCode === 405 || res.statusCode === 404) {
        validateError(res);
        return;
      }
      throw new Error(`OpenAPI: ${method.toUpperCase()} ${match.tpl} is not documented`);
    }
    const statusKey = String(res.statusCode);
    const response = op.responses[statusKey] ?? op.responses.default;
    const usedKey = op.responses[statusKey] ? statusKey : 'default';
    if (!response) throw new Error(`OpenAPI: ${method.toUpperCase()} ${match.tpl} does not document ${statusKey}`);
    seen.add(`${method.toUpperCase()} ${match.tpl} ${usedKey}`);
    if (!response.content) {
      if (res.body.length) throw new Error(`OpenAPI: ${method} ${match.tpl} ${statusKey} documents no body`);
      return;
    }
    const type = (res.headers['content-type'] ?? '').split(';')[0]?.trim() ?? '';
    if (!Object.hasOwn(response.content, type)) {
      throw new Error(
        `OpenAPI: ${method} ${match.tpl} ${statusKey} content type ${type} not in ${Object.keys(response.content)}`,
      );
    }
    for (const h of Object.keys(response.headers ?? {})) {
      if (
        ['location', 'www-authenticate', 'content-disposition'].includes(h.toLowerCase()) &&
        !res.headers[h.toLowerCase()]
      ) {
        throw new Error(`OpenAPI: ${method} ${match.tpl} ${statusKey} lacks documented header ${h}`);
      }
    }
    const pointer = `openapi.json#/paths/${esc(match.tpl)}/${method}/responses/${usedKey}/content/${esc(type)}/schema`;
    const check = ajv.getSchema(pointer);
    if (!check) throw new Error(`OpenAPI: no schema at ${pointer}`);
    const value = type === 'application/json' ? JSON.parse(res.body) : res.body;
    if (!check(value)) {
      throw new Error(
        `OpenAPI: ${method.toUpperCase()} ${path} ${statusKey} does not match its schema: ${ajv.errorsText(check.errors)}\n${res.body.slice(0, 500)}`,
      );
    }
  }

  function validateError(res: ValidatedResponse): void {
    const check = ajv.getSchema('openapi.json#/components/schemas/Error');
    if (!check?.(JSON.parse(res.body))) throw new Error(`OpenAPI: ${res.statusCode} body is not an Error: ${res.body}`);
  }

  /** Documented (operation, status) pairs not seen yet, among the statuses given. */
  function unseen(statuses: (key: string) => boolean): string[] {
    const out: string[] = [];
    for (const [tpl, ops] of Object.entries(paths)) {
      for (const [m, op] of Object.entries(ops)) {
        for (const s of Object.keys(op.responses)) {
          const key = `${m.toUpperCase()} ${tpl} ${s}`;
          if (statuses(key) && !seen.has(key)) out.push(key);
        }
      }
    }
    return out;
  }

  return { validate, seen, unseen, ajv };
}
