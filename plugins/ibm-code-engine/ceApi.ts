/** A small `fetch` client for the Code Engine REST API v2 (functions, secrets) and the IAM token exchange. */

export interface CeApiClientOptions {
  /** `https://api.<region>.codeengine.cloud.ibm.com/v2` or the stand-in's URL. */
  baseUrl: string;
  projectId: string;
  version: string;
  token: string;
}

export class CeApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'CeApiError';
  }
}

/** The fields of the API's `Function` the plugin reads (SDK `code-engine/v2.ts`). */
export interface CeFunction {
  name: string;
  /** Optimistic-locking version, sent back verbatim as `If-Match` (no quotes added). */
  entity_tag: string;
  /** `offline` | `deploying` | `ready` | `failed` */
  status: string;
  /** `ready`, `ready_update_in_progress`, `ready_last_update_failed`, `no_code_bundle`, `deploying`, … */
  status_details?: { reason?: string };
  endpoint?: string;
  runtime?: string;
  code_reference?: string;
}

/** Exchanges an API key for an IAM access token (`grant_type=urn:ibm:params:oauth:grant-type:apikey`). */
export async function iamToken(iamUrl: string, apiKey: string): Promise<string> {
  const resp = await fetch(`${iamUrl.replace(/\/$/, '')}/identity/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams({ grant_type: 'urn:ibm:params:oauth:grant-type:apikey', apikey: apiKey }).toString(),
  });
  const body = (await resp.json().catch(() => ({}))) as { access_token?: string; errorMessage?: string };
  if (!resp.ok || !body.access_token) {
    throw new CeApiError(resp.status, `IAM token exchange failed (${resp.status}): ${body.errorMessage ?? 'no token'}`);
  }
  return body.access_token;
}

/** The Code Engine v2 calls the plugin makes. */
export function ceApiClient(opts: CeApiClientOptions) {
  const base = `${opts.baseUrl.replace(/\/$/, '')}/projects/${encodeURIComponent(opts.projectId)}`;
  const call = async <T>(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<{ status: number; body: T }> => {
    const resp = await fetch(`${base}${path}?version=${opts.version}`, {
      method,
      headers: {
        authorization: `Bearer ${opts.token}`,
        accept: 'application/json',
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...headers,
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await resp.text();
    const parsed = text ? (JSON.parse(text) as unknown) : undefined;
    if (!resp.ok) {
      const msg = (parsed as { errors?: Array<{ message?: string }> } | undefined)?.errors?.[0]?.message ?? text;
      throw new CeApiError(resp.status, `${method} ${path}: ${resp.status} ${msg}`);
    }
    return { status: resp.status, body: parsed as T };
  };
  const fnPath = (name: string) => `/functions/${encodeURIComponent(name)}`;
  return {
    async getFunction(name: string): Promise<CeFunction | undefined> {
      try {
        return (await call<CeFunction>('GET', fnPath(name))).body;
      } catch (err) {
        if (err instanceof CeApiError && err.status === 404) return undefined;
        throw err;
      }
    },
    async createFunction(body: Record<string, unknown>): Promise<CeFunction> {
      return (await call<CeFunction>('POST', '/functions', body)).body;
    },
    /** Merge-patches a function; `entityTag` is the `entity_tag` read just before, sent as `If-Match` unchanged. */
    async updateFunction(name: string, entityTag: string, patch: Record<string, unknown>): Promise<CeFunction> {
      try {
        return (
          await call<CeFunction>('PATCH', fnPath(name), patch, {
            'content-type': 'application/merge-patch+json',
            'if-match': entityTag,
          })
        ).body;
      } catch (err) {
        if (err instanceof CeApiError && err.status === 412) {
          throw new CeApiError(
            412,
            `${name} was changed by someone else since it was read (412 on If-Match ${entityTag}): run deploy again`,
          );
        }
        throw err;
      }
    },
    async deleteFunction(name: string): Promise<boolean> {
      try {
        await call('DELETE', fnPath(name));
        return true;
      } catch (err) {
        if (err instanceof CeApiError && err.status === 404) return false;
        throw err;
      }
    },
    async secretExists(name: string): Promise<boolean> {
      try {
        await call('GET', `/secrets/${encodeURIComponent(name)}`);
        return true;
      } catch (err) {
        if (err instanceof CeApiError && err.status === 404) return false;
        throw err;
      }
    },
  };
}

export type CeApiClient = ReturnType<typeof ceApiClient>;

/** Reasons that end a deploy as failed even though `status` may still say `ready`. */
const FAILED_REASONS: Readonly<Record<string, string>> = {
  ready_last_update_failed:
    'Code Engine could not apply this update (status_details.reason ready_last_update_failed); the function still runs its previous version',
  no_code_bundle:
    'Code Engine cannot load the code bundle (status_details.reason no_code_bundle): check that the image exists and that code_secret grants pull access',
};

/** Where a function stands after a create or update: done, still rolling out, or failed (with what to do). */
export function readiness(fn: CeFunction): { state: 'ready' | 'pending' | 'failed'; detail: string } {
  const reason = fn.status_details?.reason;
  const detail = `status ${fn.status}, reason ${reason ?? '(none)'}`;
  if (reason && FAILED_REASONS[reason]) return { state: 'failed', detail: FAILED_REASONS[reason] };
  if (fn.status === 'failed') return { state: 'failed', detail: `Code Engine reports the function failed (${detail})` };
  if (fn.status === 'ready' && (reason === undefined || reason === 'ready')) return { state: 'ready', detail };
  return { state: 'pending', detail };
}
