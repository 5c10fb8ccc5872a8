import type { ErrorCode } from '../core/index.js';
import { AppError, ERROR_CODES } from '../core/index.js';
import type { CliConfig } from './config.js';
import { CliError, ExitCode, usageError } from './exitCodes.js';

/** A thin client for the lockstep HTTP API (`/v1`), authenticated with an IAM bearer token from an API key. */
export interface ApiClient {
  readonly baseUrl: string;
  get<T>(path: string, query?: Record<string, string | number | undefined>): Promise<T>;
  /**
   * A text body; a paged one (the export: `X-Lockstep-Next-Cursor`) is followed page by page and concatenated.
   * `onPage` reports progress (records so far).
   */
  getText(
    path: string,
    query?: Record<string, string | number | undefined>,
    onPage?: (recordsSoFar: number) => void,
  ): Promise<string>;
  post<T>(path: string, body: unknown): Promise<T>;
}

/**
 * Builds the API client from configuration.
 * @throws {CliError} exit 2 when api.url, iam.url or the API key is missing
 */
export function createApiClient(config: CliConfig, fetchImpl: typeof fetch = fetch): ApiClient {
  const baseUrl = config.api.url;
  if (!baseUrl) {
    throw usageError(
      'no lockstep API URL configured',
      'start the local stack (`npm start`), or set --api-url / LOCKSTEP_API_URL / api.url in lockstep.config.yaml',
    );
  }
  const iamUrl = config.iam.url;
  const apiKey = config.iam.apiKey;
  if (!iamUrl || !apiKey) {
    throw usageError(
      `no ${!iamUrl ? 'IAM URL' : 'API key'} configured to call the lockstep API`,
      'set --iam-url / LOCKSTEP_IAM_URL and --api-key / LOCKSTEP_API_KEY, or run against `npm start` (.lockstep/dev.json)',
    );
  }
  let token: { value: string; expiresAtMs: number } | undefined;

  const bearer = async (): Promise<string> => {
    if (token && token.expiresAtMs - 60_000 > Date.now()) return token.value;
    const res = await call(fetchImpl, `${iamUrl}/identity/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: new URLSearchParams({
        grant_type: 'urn:ibm:params:oauth:grant-type:apikey',
        apikey: apiKey.reveal(),
      }).toString(),
    });
    if (!res.ok) {
      throw new CliError(ExitCode.FAILED, `IAM at ${iamUrl} refused the API key (HTTP ${res.status})`, {
        hint: 'check the API key (--api-key, LOCKSTEP_API_KEY or .lockstep/dev.json)',
      });
    }
    const body = (await res.json()) as { access_token?: string; expires_in?: number };
    if (!body.access_token) throw new CliError(ExitCode.FAILED, `IAM at ${iamUrl} returned no access token`);
    token = { value: body.access_token, expiresAtMs: Date.now() + (body.expires_in ?? 3600) * 1000 };
    return token.value;
  };

  const request = async (
    method: string,
    path: string,
    opts: { query?: Record<string, string | number | undefined>; body?: unknown; accept?: string },
  ) => {
    const url = new URL(`${baseUrl}${path}`);
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const res = await call(fetchImpl, url.toString(), {
      method,
      headers: {
        authorization: `Bearer ${await bearer()}`,
        accept: opts.accept ?? 'application/json',
        ...(opts.body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    });
    if (!res.ok) throw await apiError(res, method, path);
    return res;
  };

  return {
    baseUrl,
    async get<T>(path: string, query?: Record<string, string | number | undefined>): Promise<T> {
      return (await (await request('GET', path, { query })).json()) as T;
    },
    async getText(path, query, onPage) {
      const parts: string[] = [];
      let records = 0;
      let cursor: string | undefined;
      for (let page = 0; page < 100_000; page++) {
        const res = await request('GET', path, { query: { ...query, cursor }, accept: '*/*' });
        parts.push(await res.text());
        records += Number(res.headers.get('x-lockstep-records') ?? 0);
        cursor = res.headers.get('x-lockstep-next-cursor') ?? undefined;
        if (!cursor) break;
        onPage?.(records);
      }
      return parts.join('');
    },
    async post<T>(path: string, body: unknown): Promise<T> {
      return (await (await request('POST', path, { body })).json()) as T;
    },
  };
}

async function call(fetchImpl: typeof fetch, url: string, init: RequestInit): Promise<Response> {
  try {
    return await fetchImpl(url, { ...init, signal: AbortSignal.timeout(30_000) });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name;
    throw new CliError(ExitCode.FAILED, `cannot reach ${new URL(url).origin} (${cause})`, {
      hint: 'is the stack running? start it with `npm start`, or check the URL settings (`lockstep config`)',
    });
  }
}

async function apiError(res: Response, method: string, path: string): Promise<Error> {
  let body: { error?: { code?: string; message?: string; details?: Record<string, unknown> } } = {};
  try {
    body = (await res.json()) as typeof body;
  } catch {
    // not JSON: fall through to a generic message
  }
  const code = body.error?.code;
  if (code && (ERROR_CODES as readonly string[]).includes(code)) {
    const details = Object.fromEntries(
      Object.entries(body.error?.details ?? {}).filter(([, v]) => ['string', 'number', 'boolean'].includes(typeof v)),
    ) as Record<string, string | number | boolean>;
    return new AppError(code as ErrorCode, body.error?.message ?? `${method} ${path} failed (HTTP ${res.status})`, {
      details,
    });
  }
  return new CliError(ExitCode.FAILED, `${method} ${path} failed (HTTP ${res.status})`);
}
