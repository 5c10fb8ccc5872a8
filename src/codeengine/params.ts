/**
 * Code Engine's "internal request data interface" (params ⇄ HTTP), both directions. Pure data: no I/O, no clock.
 *
 * Inbound (`main(params)`): `__ce_method`, `__ce_headers` (canonicalised names, e.g. `Content-Type`), `__ce_path`,
 * `__ce_query` (raw, URL-encoded), `__ce_body` (base64 for JSON and binary types, plain text for `text/*`, raw
 * percent-encoded for form data) plus the decoded query and the JSON body's top-level keys "unfolded" into params.
 * Cron (PingSource) deliveries carry `Ce-Type: dev.knative.sources.ping`; Code Engine puts the subscription's data in
 * `body` (base64 when its content type is `application/json`) and unfolds its JSON keys into the params
 * (ibm-cloud-docs/codeengine `subscription-cron.md`, "Cron header and body information for events delivered to
 * functions"); see {@link toCronParams}. A ping posted over HTTP by anyone (the header proves nothing) has its body in
 * `__ce_body`; both are read, and the cron secret in the data is what authenticates a ping.
 *
 * Outbound: `{ statusCode, headers, body }`; JSON bodies as objects, binary bodies base64, text as strings.
 */
import type { HttpRequest, HttpResponse } from '../core/index.js';
import { AppError } from '../core/index.js';

/** What Code Engine passes to `main`. */
export interface CeParams {
  __ce_method?: string;
  __ce_headers?: Record<string, string | string[]>;
  __ce_path?: string;
  __ce_query?: string;
  __ce_body?: unknown;
  /** Cron deliveries may carry their data here instead of `__ce_body`. */
  body?: unknown;
  [key: string]: unknown;
}

/** What `main` returns to Code Engine. */
export interface CeResult {
  statusCode: number;
  headers: Record<string, string>;
  body: string | Record<string, unknown> | unknown[];
}

/** CloudEvent type of a Code Engine cron (Knative PingSource) delivery. */
export const CE_PING_TYPE = 'dev.knative.sources.ping';

/** A cron delivery's CloudEvent attributes and data. */
export interface CronPing {
  id: string;
  source: string;
  /** ISO time of the ping, as sent. */
  time?: string;
  /** Parsed JSON data, or the text. Undefined when there was none. */
  data: unknown;
  /** Extension attributes (`Ce-<Name>` headers other than the core ones), lower-case names. */
  extensions: Record<string, string>;
}

/** One normalized invocation: an HTTP request, or a cron ping (which is also an HTTP request underneath). */
export type CeEvent =
  | { kind: 'http'; request: HttpRequest; unfolded: Record<string, unknown> }
  | { kind: 'cron'; request: HttpRequest; unfolded: Record<string, unknown>; cron: CronPing };

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
/** A request id taken from the caller (`X-Request-Id`, or `Ce-Id` of a cron ping); anything else gets a new one. */
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,100}$/;
const CORE_CE_HEADERS = new Set(['ce-id', 'ce-source', 'ce-specversion', 'ce-time', 'ce-type', 'ce-subject']);

/** Media type without parameters, lower case (`application/json; charset=utf-8` → `application/json`). */
export function mediaTypeOf(contentType: string | undefined): string {
  return (contentType ?? '').split(';')[0]!.trim().toLowerCase();
}

/** True for media types Code Engine passes as text: `text/*` and form data. */
export function isTextMediaType(mediaType: string): boolean {
  return mediaType.startsWith('text/') || mediaType === 'application/x-www-form-urlencoded';
}

/** True for JSON media types (`application/json`, `application/*+json`). */
export function isJsonMediaType(mediaType: string): boolean {
  return mediaType === 'application/json' || /^application\/[a-z0-9.+-]+\+json$/.test(mediaType);
}

/** Canonical header name as Code Engine writes it: `content-type` → `Content-Type`, `ce-id` → `Ce-Id`. */
export function canonicalHeaderName(name: string): string {
  return name
    .toLowerCase()
    .split('-')
    .map((p) => (p ? p[0]!.toUpperCase() + p.slice(1) : p))
    .join('-');
}

/**
 * Decodes a Code Engine body field for its media type. JSON and binary bodies are base64; text and form bodies are
 * plain strings. A JSON body that is not base64 (some cron deliveries) or an already-parsed object is accepted as is.
 * @throws {AppError} VALIDATION_FAILED for a body that cannot be decoded
 */
export function decodeCeBody(raw: unknown, mediaType: string): Buffer | undefined {
  if (raw === undefined || raw === null || raw === '') return undefined;
  if (typeof raw === 'object') return Buffer.from(JSON.stringify(raw), 'utf8');
  if (typeof raw !== 'string') return Buffer.from(String(raw), 'utf8');
  if (isTextMediaType(mediaType) || mediaType === '') {
    return Buffer.from(raw, 'utf8');
  }
  const compact = raw.replace(/\s+/g, '');
  if (BASE64.test(compact)) {
    const bytes = Buffer.from(compact, 'base64');
    // A short JSON scalar (e.g. `1234`) is also valid base64; for JSON keep whichever parses.
    if (!isJsonMediaType(mediaType) || parsesAsJson(bytes) || !parsesAsJson(Buffer.from(raw, 'utf8'))) return bytes;
    return Buffer.from(raw, 'utf8');
  }
  if (isJsonMediaType(mediaType)) return Buffer.from(raw, 'utf8');
  throw new AppError('VALIDATION_FAILED', `Body of type ${mediaType} must be base64-encoded`, {
    details: { contentType: mediaType },
  });
}

function parsesAsJson(bytes: Buffer): boolean {
  try {
    JSON.parse(bytes.toString('utf8'));
    return true;
  } catch {
    return false;
  }
}

function parseQuery(raw: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of new URLSearchParams(raw)) out[k] = v;
  return out;
}

function lowerHeaders(headers: CeParams['__ce_headers']): Record<string, string> {
  const out: Record<string, string> = {};
  if (!headers || typeof headers !== 'object') return out;
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined || v === null) continue;
    out[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : String(v);
  }
  return out;
}

/**
 * Converts Code Engine `params` into one normalized event.
 * @param fallbackRequestId used when the request carries no `X-Request-Id` (and, for cron, no `Ce-Id`)
 * @throws {AppError} VALIDATION_FAILED when a body cannot be decoded
 */
export function fromCeParams(params: CeParams, fallbackRequestId: string): CeEvent {
  const headers = lowerHeaders(params.__ce_headers);
  const mediaType = mediaTypeOf(headers['content-type']);
  const isPing = headers['ce-type'] === CE_PING_TYPE;
  const rawBody = params.__ce_body !== undefined ? params.__ce_body : isPing ? params.body : undefined;
  const body = decodeCeBody(rawBody, mediaType);
  const path = typeof params.__ce_path === 'string' && params.__ce_path.startsWith('/') ? params.__ce_path : '/';
  const rawQuery = typeof params.__ce_query === 'string' ? params.__ce_query.replace(/^\?/, '') : '';
  const unfolded: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(params)) if (!k.startsWith('__ce_')) unfolded[k] = v;
  const request: HttpRequest = {
    method: (typeof params.__ce_method === 'string' ? params.__ce_method : isPing ? 'POST' : 'GET').toUpperCase(),
    path,
    query: parseQuery(rawQuery),
    headers,
    ...(body ? { body } : {}),
    // echoed in the `x-request-id` response header and logs: only a well-formed id is kept (no CR/LF injection)
    requestId:
      [headers['x-request-id'], isPing ? headers['ce-id'] : undefined].find((v) => v && REQUEST_ID.test(v)) ??
      fallbackRequestId,
  };
  if (!isPing) return { kind: 'http', request, unfolded };
  const extensions: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) {
    if (k.startsWith('ce-') && !CORE_CE_HEADERS.has(k)) extensions[k.slice(3)] = v;
  }
  let data: unknown;
  if (body) {
    const text = body.toString('utf8');
    try {
      data = isJsonMediaType(mediaType) || /^\s*[{[]/.test(text) ? JSON.parse(text) : text;
    } catch {
      data = text;
    }
  }
  const cron: CronPing = {
    id: headers['ce-id'] ?? fallbackRequestId,
    source: headers['ce-source'] ?? 'unknown',
    ...(headers['ce-time'] ? { time: headers['ce-time'] } : {}),
    data,
    extensions,
  };
  return { kind: 'cron', request, unfolded, cron };
}

/** Converts a transport-neutral response into what `main` returns to Code Engine. */
export function toCeResult(response: HttpResponse): CeResult {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(response.headers)) headers[canonicalHeaderName(k)] = v;
  const statusCode = Number.isInteger(response.statusCode) && response.statusCode >= 200 ? response.statusCode : 500;
  const mediaType = mediaTypeOf(headers['Content-Type']);
  if (!headers['Content-Type']) headers['Content-Type'] = 'text/plain; charset=utf-8';
  const { body } = response;
  if (isJsonMediaType(mediaType)) {
    const text = Buffer.isBuffer(body) ? body.toString('utf8') : body;
    if (text === '') return { statusCode, headers, body: '' };
    try {
      const parsed: unknown = JSON.parse(text);
      if (parsed !== null && typeof parsed === 'object') {
        return { statusCode, headers, body: parsed as Record<string, unknown> | unknown[] };
      }
    } catch {
      // not JSON after all: send the text
    }
    return { statusCode, headers, body: text };
  }
  // Code Engine reads the body of any non-text, non-JSON type as base64, whether we hold it as bytes or a string
  // (e.g. the API's `application/x-ndjson` export).
  if (isTextMediaType(mediaType)) {
    return { statusCode, headers, body: Buffer.isBuffer(body) ? body.toString('utf8') : body };
  }
  return { statusCode, headers, body: (Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8')).toString('base64') };
}

/**
 * Builds the `params` Code Engine would pass for an HTTP request (used by the local runner and tests).
 * Headers are canonicalised, JSON and binary bodies base64-encoded, the query and JSON keys unfolded. An HTTP request
 * with a ping `Ce-Type` header is still an HTTP request (body in `__ce_body`); cron deliveries: {@link toCronParams}.
 */
export function toCeParams(input: {
  method: string;
  path?: string;
  rawQuery?: string;
  headers: Record<string, string | string[] | undefined>;
  body?: Buffer;
}): CeParams {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(input.headers)) {
    if (v === undefined) continue;
    headers[canonicalHeaderName(k)] = Array.isArray(v) ? v.join(', ') : v;
  }
  const mediaType = mediaTypeOf(headers['Content-Type']);
  const rawQuery = (input.rawQuery ?? '').replace(/^\?/, '');
  const params: CeParams = {};
  for (const [k, v] of new URLSearchParams(rawQuery)) params[k] = v;
  if (input.body && input.body.length > 0 && isJsonMediaType(mediaType)) {
    try {
      const parsed: unknown = JSON.parse(input.body.toString('utf8'));
      if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) Object.assign(params, parsed);
    } catch {
      // Code Engine forwards the raw body; the function decides what to do with bad JSON
    }
  }
  params.__ce_method = input.method.toUpperCase();
  params.__ce_headers = headers;
  params.__ce_path = input.path?.startsWith('/') ? input.path : '/';
  params.__ce_query = rawQuery;
  if (input.body && input.body.length > 0) {
    // a body without a type travels as text, as `decodeCeBody` reads it (else its bytes change on the way)
    const asText = isTextMediaType(mediaType) || mediaType === '';
    const encoded = asText ? input.body.toString('utf8') : input.body.toString('base64');
    params.__ce_body = encoded;
  }
  return params;
}

/**
 * Builds the `params` Code Engine passes to a function for one cron delivery (ibm-cloud-docs/codeengine
 * `subscription-cron.md`, "Cron header and body information for events delivered to functions"): the CloudEvent
 * attributes as canonical `__ce_headers`, the data in `body` — base64 when the content type is `application/json`,
 * plain text otherwise — and the JSON data's top-level keys unfolded into the params. No `__ce_method`, `__ce_path`
 * or `__ce_query` (the documented example has none). Used by the local function runner.
 */
export function toCronParams(input: {
  id: string;
  source: string;
  time: string;
  /** The subscription's data as configured (`--data`): JSON text or plain text. */
  data?: string;
  contentType: 'application/json' | 'text/plain';
}): CeParams {
  const bytes = Buffer.from(input.data ?? '', 'utf8');
  const params: CeParams = {};
  if (input.contentType === 'application/json' && bytes.length > 0) {
    try {
      const parsed: unknown = JSON.parse(bytes.toString('utf8'));
      if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) Object.assign(params, parsed);
    } catch {
      // delivered as is; the function decides what to do with it
    }
  }
  params.__ce_headers = {
    'Ce-Id': input.id,
    'Ce-Source': input.source,
    'Ce-Specversion': '1.0',
    'Ce-Time': input.time,
    'Ce-Type': CE_PING_TYPE,
    'Content-Length': String(bytes.length),
    'Content-Type': input.contentType,
  };
  if (bytes.length > 0) {
    params.body = input.contentType === 'application/json' ? bytes.toString('base64') : bytes.toString('utf8');
  }
  return params;
}

/** Converts a `main` result back into an HTTP response (the local runner's outbound half). */
export function fromCeResult(result: unknown): HttpResponse {
  if (!result || typeof result !== 'object') {
    return { statusCode: 200, headers: { 'content-type': 'text/plain; charset=utf-8' }, body: String(result ?? '') };
  }
  const r = result as Partial<CeResult>;
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(r.headers ?? {})) headers[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v;
  const statusCode = typeof r.statusCode === 'number' ? r.statusCode : 200;
  if (statusCode < 200 || statusCode > 599 || !Number.isInteger(statusCode)) {
    return { statusCode: 422, headers: { 'content-type': 'text/plain' }, body: 'invalid statusCode from function' };
  }
  const mediaType = mediaTypeOf(headers['content-type']);
  const body = r.body;
  if (body === undefined || body === null) return { statusCode, headers, body: '' };
  if (typeof body === 'object') {
    if (!headers['content-type']) headers['content-type'] = 'application/json';
    return { statusCode, headers, body: JSON.stringify(body) };
  }
  if (!headers['content-type']) headers['content-type'] = 'text/plain; charset=utf-8';
  if (mediaType && !isTextMediaType(mediaType) && !isJsonMediaType(mediaType)) {
    return { statusCode, headers, body: Buffer.from(String(body), 'base64') };
  }
  return { statusCode, headers, body: String(body) };
}
