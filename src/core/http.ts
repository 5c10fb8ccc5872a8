/**
 * Transport-neutral HTTP shapes. `src/codeengine` converts Code Engine `params` to `HttpRequest` and
 * `HttpResponse` back; `src/api` and the events handler speak only these; the local runner does the same over
 * node:http. Pure data.
 */
export interface HttpRequest {
  /** Upper-case method. */
  method: string;
  /** Path below the function root, always starting with `/` (e.g. `/v1/groups`). */
  path: string;
  /** Decoded query parameters (last value wins). */
  query: Record<string, string>;
  /** Header names in lower case. */
  headers: Record<string, string>;
  /** Raw body bytes, if any. */
  body?: Buffer;
  /** Id of this request (from the platform, or generated). */
  requestId: string;
}

export interface HttpResponse {
  statusCode: number;
  headers: Record<string, string>;
  /** A string (JSON, HTML, CSV, text) or bytes. */
  body: string | Buffer;
}

/** A JSON response with the right content type. */
export function jsonResponse(statusCode: number, value: unknown, headers: Record<string, string> = {}): HttpResponse {
  return {
    statusCode,
    headers: { 'content-type': 'application/json; charset=utf-8', ...headers },
    body: JSON.stringify(value),
  };
}
