import type { HttpRequest } from '../core/index.js';
import { AppError } from '../core/index.js';
import type { OperationSpec } from './operations.js';
import { checkQueryNames } from './params.js';
import { assertSupported, checkValue, fromParamString, invalidInput, type Schema } from './schema.js';
import { resolveSchema } from './shapes.js';

/** A request's input after validation against its operation: typed path and query values and the parsed body. */
export interface RouteInput {
  path: Record<string, unknown>;
  query: Record<string, unknown>;
  body?: unknown;
}

/** Largest request body accepted (the only bodies are a small JSON rotation request or the login form). */
export const MAX_BODY_BYTES = 16 * 1024;

/** Query parameter names of an operation (what the router accepts). */
export const queryNames = (op: OperationSpec): string[] =>
  op.parameters.filter((p) => p.in === 'query').map((p) => p.name);

/**
 * Refuses, when the API is created, an operation whose schemas use a keyword the validator does not enforce.
 * @throws {AppError} CONFIG_INVALID
 */
export function assertOperationSupported(op: OperationSpec): void {
  for (const p of op.parameters) assertSupported(p.schema, `${op.operationId} parameter ${p.name}`);
  if (op.requestBody) assertSupported(resolved(op.requestBody.schema), `${op.operationId} requestBody`);
}

const resolved = (s: Schema): Schema => (typeof s.$ref === 'string' ? resolveSchema(s.$ref) : s);

/**
 * Validates path parameters, query parameters and (for operations with a JSON request body) the body against the
 * operation's schemas. Unknown query parameters are refused, so a typo never silently widens a query.
 * @throws {AppError} VALIDATION_FAILED, PAYLOAD_TOO_LARGE, UNSUPPORTED_MEDIA_TYPE
 */
export function readInput(op: OperationSpec, req: HttpRequest, pathValues: Record<string, string>): RouteInput {
  checkQueryNames(req.query, queryNames(op));
  const out: RouteInput = { path: {}, query: {} };
  for (const p of op.parameters) {
    const raw = p.in === 'path' ? pathValues[p.name] : req.query[p.name];
    if (raw === undefined) {
      if (p.required) {
        throw new AppError('VALIDATION_FAILED', `${p.name} is required: ${p.description}`, {
          details: { field: p.name },
        });
      }
      const dflt = p.schema.default;
      if (dflt !== undefined) out[p.in][p.name] = dflt;
      continue;
    }
    const value = fromParamString(p.schema, raw);
    const problem = checkValue(p.schema, value, resolveSchema, p.name);
    if (problem) throw invalidInput(problem, raw);
    out[p.in][p.name] = value;
  }
  if (op.requestBody?.mediaType === 'application/json') out.body = readJsonBody(req, op.requestBody.schema);
  return out;
}

/** Reads an optional JSON body (`{}` when absent) and validates it. */
function readJsonBody(req: HttpRequest, schema: Schema): unknown {
  const raw = req.body;
  if (!raw || raw.length === 0) return {};
  if (raw.length > MAX_BODY_BYTES) {
    throw new AppError('PAYLOAD_TOO_LARGE', `The body must be at most ${MAX_BODY_BYTES} bytes`);
  }
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (type !== 'application/json') throw new AppError('UNSUPPORTED_MEDIA_TYPE', 'Send the body as application/json');
  let body: unknown;
  try {
    body = JSON.parse(raw.toString('utf8'));
  } catch {
    throw new AppError('VALIDATION_FAILED', 'The body is not valid JSON', { details: { field: 'body' } });
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new AppError('VALIDATION_FAILED', 'The body must be a JSON object', { details: { field: 'body' } });
  }
  const problem = checkValue(schema, body, resolveSchema, '');
  if (problem) throw invalidInput(problem.field ? problem : { ...problem, field: 'body' });
  return body;
}
