import { createOpenApiValidator } from '../../unit/api/support/openapiValidator.js';

export interface HttpResult {
  status: number;
  headers: Record<string, string>;
  text: string;
  // biome-ignore lint/suspicious/noExplicitAny: parsed response bodies are checked field by field
  json(): any;
}

/**
 * A fetch over real HTTP that validates every response against the server's own `/openapi.json` (fetched once),
 * so the document stays true. `unseen()` lists documented operations no test has exercised.
 */
export async function createHttpClient(baseUrl: string) {
  const doc = (await (await fetch(`${baseUrl}/openapi.json`)).json()) as Record<string, unknown>;
  const validator = createOpenApiValidator(doc);
  async function request(
    method: string,
    path: string,
    opts: { token?: string; body?: string | Buffer; headers?: Record<string, string>; redirect?: 'manual' } = {},
  ): Promise<HttpResult> {
    const headers: Record<string, string> = { ...(opts.headers ?? {}) };
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    const res = await fetch(`${baseUrl}${path}`, {
      method,
      headers,
      body: opts.body,
      redirect: 'manual',
    });
    const text = await res.text();
    const hdrs: Record<string, string> = {};
    res.headers.forEach((v, k) => {
      hdrs[k] = v;
    });
    validator.validate({
      method,
      path: new URL(path, baseUrl).pathname,
      statusCode: res.status,
      headers: hdrs,
      body: text,
    });
    return { status: res.status, headers: hdrs, text, json: () => JSON.parse(text) };
  }
  return { request, doc, validator };
}
