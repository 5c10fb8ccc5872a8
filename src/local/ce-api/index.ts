/**
 * A local stand-in for the Code Engine REST API v2 (functions, secrets, runtimes): a real HTTP server on 127.0.0.1
 * that validates requests the way the documented API does — `?version=` on every call, an IAM bearer token, required
 * fields and their ranges, the 100 KB limit of inline code, `application/merge-patch+json` and `If-Match` ETags on
 * update — so the serverless plugin is tested end to end without the cloud.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Versions the Node SDK accepts (`?version=`): 2021-03-31 … 2026-06-15. */
export const CE_API_MIN_VERSION = '2021-03-31';
export const CE_API_MAX_VERSION = '2026-06-15';
export const CE_RUNTIMES = ['nodejs-20', 'nodejs-22', 'nodejs-24', 'python-3.11', 'python-3.13'] as const;
/** Inline code limit including base64 overhead. */
export const INLINE_CODE_LIMIT_BYTES = 100 * 1024;

const NAME = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const CPU_MEMORY: Record<string, string> = { '0.125': '0.25G', '0.25': '1G', '0.5': '2G', '1': '4G' };
const ENV_TYPES = [
  'literal',
  'secret_full_reference',
  'secret_key_reference',
  'config_map_full_reference',
  'config_map_key_reference',
];

/** A stored function resource (what GET returns). */
export interface CeFunctionResource {
  name: string;
  id: string;
  project_id: string;
  region: string;
  runtime: string;
  code_reference: string;
  code_binary: boolean;
  code_main: string;
  code_secret?: string;
  managed_domain_mappings: string;
  run_env_variables: Record<string, unknown>[];
  run_compute_resource_token_enabled: boolean;
  scale_concurrency: number;
  scale_cpu_limit: string;
  scale_memory_limit: string;
  scale_down_delay: number;
  scale_max_execution_time: number;
  entity_tag: string;
  status: 'offline' | 'deploying' | 'ready' | 'failed';
  endpoint: string;
  endpoint_internal: string;
  created_at: string;
  resource_type: 'function_v2';
  href: string;
}

export interface CeSecretResource {
  name: string;
  id: string;
  format: string;
  data: Record<string, string>;
  entity_tag: string;
  created_at: string;
  resource_type: 'secret_generic_v2';
}

/** One request the stand-in saw (for assertions). */
export interface CeApiCall {
  method: string;
  path: string;
  version?: string;
  status: number;
  ifMatch?: string;
  contentType?: string;
}

export interface CeApiStandIn {
  /** Base URL, e.g. `http://127.0.0.1:1234/v2`. */
  url: string;
  projectId: string;
  functions: Map<string, CeFunctionResource>;
  secrets: Map<string, CeSecretResource>;
  calls: CeApiCall[];
  close(): Promise<void>;
}

export interface CeApiOptions {
  projectId: string;
  region?: string;
  /** Decides whether a bearer token is valid (e.g. verify it against the local IAM). Default: any non-empty token. */
  acceptToken?: (token: string) => boolean | Promise<boolean>;
  /** GETs a new function answers with `deploying` before it reports `ready` (default 1). */
  deployingPolls?: number;
}

class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

function readJson(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      if (!text) return resolve(undefined);
      try {
        resolve(JSON.parse(text));
      } catch {
        reject(new ApiError(400, 'invalid_json', 'request body is not valid JSON'));
      }
    });
    req.on('error', reject);
  });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return !!v && typeof v === 'object' && !Array.isArray(v);
}

function validateCodeReference(ref: unknown): void {
  if (typeof ref !== 'string' || !ref) throw new ApiError(400, 'invalid_field', 'code_reference is required');
  if (ref.startsWith('data:')) {
    const m = /^data:text\/plain;base64,([A-Za-z0-9+/=]+)$/.exec(ref);
    if (!m) throw new ApiError(400, 'invalid_field', 'code_reference data URL must be data:text/plain;base64,<code>');
    if (Buffer.byteLength(ref) > INLINE_CODE_LIMIT_BYTES) {
      throw new ApiError(400, 'code_too_large', `inline code exceeds ${INLINE_CODE_LIMIT_BYTES} bytes`);
    }
    return;
  }
  if (!/^cr:\/\/[a-z0-9.-]+\/[a-z0-9._/-]+(:[A-Za-z0-9._-]+)?$/.test(ref)) {
    throw new ApiError(
      400,
      'invalid_field',
      'code_reference must be a data URL or cr://<registry>/<namespace>/<image>',
    );
  }
}

/** Validates the function fields present in `body` (all optional here; `create` checks the required ones). */
function validateFunctionFields(body: Record<string, unknown>): void {
  if ('runtime' in body && !(CE_RUNTIMES as readonly string[]).includes(String(body.runtime))) {
    throw new ApiError(400, 'invalid_field', `runtime must be one of ${CE_RUNTIMES.join(', ')}`);
  }
  if ('code_reference' in body) validateCodeReference(body.code_reference);
  if (
    'managed_domain_mappings' in body &&
    !['local', 'local_private', 'local_public'].includes(String(body.managed_domain_mappings))
  ) {
    throw new ApiError(400, 'invalid_field', 'managed_domain_mappings must be local, local_private or local_public');
  }
  if ('scale_max_execution_time' in body) {
    const t = body.scale_max_execution_time;
    if (typeof t !== 'number' || !Number.isInteger(t) || t < 1 || t > 120) {
      throw new ApiError(400, 'invalid_field', 'scale_max_execution_time must be an integer between 1 and 120');
    }
  }
  if ('scale_cpu_limit' in body || 'scale_memory_limit' in body) {
    const cpu = String(body.scale_cpu_limit ?? '');
    const mem = String(body.scale_memory_limit ?? '');
    if ('scale_cpu_limit' in body && 'scale_memory_limit' in body && CPU_MEMORY[cpu] !== mem) {
      throw new ApiError(400, 'invalid_field', `unsupported cpu/memory combination ${cpu}/${mem}`);
    }
  }
  if ('scale_concurrency' in body) {
    const c = body.scale_concurrency;
    if (typeof c !== 'number' || !Number.isInteger(c) || c < 1 || c > 100) {
      throw new ApiError(400, 'invalid_field', 'scale_concurrency must be an integer between 1 and 100');
    }
  }
  if ('run_env_variables' in body) {
    const vars = body.run_env_variables;
    if (!Array.isArray(vars)) throw new ApiError(400, 'invalid_field', 'run_env_variables must be an array');
    for (const v of vars) {
      if (!isObject(v) || !ENV_TYPES.includes(String(v.type ?? 'literal'))) {
        throw new ApiError(400, 'invalid_field', 'run_env_variables[].type is invalid');
      }
      const type = String(v.type ?? 'literal');
      if (type === 'literal' && (typeof v.name !== 'string' || typeof v.value !== 'string')) {
        throw new ApiError(400, 'invalid_field', 'literal env variables need a name and a string value');
      }
      if (type.endsWith('_reference') && typeof v.reference !== 'string') {
        throw new ApiError(400, 'invalid_field', `${type} env variables need a reference`);
      }
      if (type.endsWith('_key_reference') && (typeof v.key !== 'string' || typeof v.name !== 'string')) {
        throw new ApiError(400, 'invalid_field', `${type} env variables need a name and a key`);
      }
    }
  }
  if ('run_compute_resource_token_enabled' in body && typeof body.run_compute_resource_token_enabled !== 'boolean') {
    throw new ApiError(400, 'invalid_field', 'run_compute_resource_token_enabled must be a boolean');
  }
}

/** Starts the stand-in on 127.0.0.1 (random port). */
export async function startCeApiStandIn(opts: CeApiOptions): Promise<CeApiStandIn> {
  const region = opts.region ?? 'us-south';
  const functions = new Map<string, CeFunctionResource>();
  const secrets = new Map<string, CeSecretResource>();
  const polls = new Map<string, number>();
  const calls: CeApiCall[] = [];
  let etagCounter = 0;
  const nextEtag = () => `"${(++etagCounter).toString(16).padStart(8, '0')}"`;
  const acceptToken = opts.acceptToken ?? ((t: string) => t.length > 0);
  let baseUrl = '';

  const handle = async (
    req: IncomingMessage,
  ): Promise<{ status: number; body?: unknown; headers?: Record<string, string> }> => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const version = url.searchParams.get('version');
    if (!version || !/^\d{4}-\d{2}-\d{2}$/.test(version)) {
      throw new ApiError(400, 'missing_version', 'query parameter version=YYYY-MM-DD is required');
    }
    if (version < CE_API_MIN_VERSION || version > CE_API_MAX_VERSION) {
      throw new ApiError(
        400,
        'invalid_version',
        `version must be between ${CE_API_MIN_VERSION} and ${CE_API_MAX_VERSION}`,
      );
    }
    const auth = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
    if (!auth || !(await acceptToken(auth[1]!)))
      throw new ApiError(401, 'unauthorized', 'a valid IAM bearer token is required');

    const parts = url.pathname.split('/').filter(Boolean);
    if (parts[0] !== 'v2') throw new ApiError(404, 'not_found', 'unknown path');
    if (parts[1] === 'function_runtimes' && parts.length === 2 && req.method === 'GET') {
      return {
        status: 200,
        body: { function_runtimes: CE_RUNTIMES.map((id) => ({ id, family: id.split('-')[0], optimized: true })) },
      };
    }
    if (parts[1] !== 'projects' || !parts[2]) throw new ApiError(404, 'not_found', 'unknown path');
    if (parts[2] !== opts.projectId) throw new ApiError(404, 'project_not_found', `project ${parts[2]} not found`);
    const collection = parts[3];
    const name = parts[4];
    if (parts.length > 5) throw new ApiError(404, 'not_found', 'unknown path');

    if (collection === 'functions') {
      if (!name && req.method === 'GET')
        return { status: 200, body: { functions: [...functions.values()], limit: 100 } };
      if (!name && req.method === 'POST') {
        if (!String(req.headers['content-type'] ?? '').startsWith('application/json')) {
          throw new ApiError(415, 'unsupported_media_type', 'Content-Type must be application/json');
        }
        const body = await readJson(req);
        if (!isObject(body)) throw new ApiError(400, 'invalid_body', 'a JSON object is required');
        for (const f of ['name', 'runtime', 'code_reference']) {
          if (body[f] === undefined) throw new ApiError(400, 'missing_field', `${f} is required`);
        }
        if (typeof body.name !== 'string' || !NAME.test(body.name) || body.name.length > 63) {
          throw new ApiError(400, 'invalid_field', 'name must be 1-63 lower-case letters, digits and hyphens');
        }
        validateFunctionFields(body);
        if (functions.has(body.name)) throw new ApiError(409, 'already_exists', `function ${body.name} already exists`);
        const fn = makeFunction(body as Record<string, unknown> & { name: string });
        functions.set(fn.name, fn);
        polls.set(fn.name, opts.deployingPolls ?? 1);
        return { status: 201, body: { ...fn, status: 'deploying' }, headers: { etag: fn.entity_tag } };
      }
      if (!name) throw new ApiError(405, 'method_not_allowed', 'method not allowed');
      const fn = functions.get(name);
      if (!fn) throw new ApiError(404, 'not_found', `function ${name} not found`);
      if (req.method === 'GET') {
        const left = polls.get(name) ?? 0;
        if (left > 0) {
          polls.set(name, left - 1);
          return { status: 200, body: { ...fn, status: 'deploying' }, headers: { etag: fn.entity_tag } };
        }
        return { status: 200, body: fn, headers: { etag: fn.entity_tag } };
      }
      if (req.method === 'PATCH') {
        if (!String(req.headers['content-type'] ?? '').startsWith('application/merge-patch+json')) {
          throw new ApiError(415, 'unsupported_media_type', 'Content-Type must be application/merge-patch+json');
        }
        const ifMatch = req.headers['if-match'];
        if (!ifMatch) throw new ApiError(400, 'missing_if_match', 'If-Match header is required');
        if (ifMatch !== '*' && ifMatch !== fn.entity_tag) {
          throw new ApiError(412, 'precondition_failed', 'If-Match does not match the current entity tag');
        }
        const body = await readJson(req);
        if (!isObject(body)) throw new ApiError(400, 'invalid_body', 'a JSON object is required');
        if ('name' in body) throw new ApiError(400, 'invalid_field', 'name cannot be changed');
        validateFunctionFields(body);
        const updated = { ...fn, ...body, entity_tag: nextEtag() } as CeFunctionResource;
        functions.set(name, updated);
        polls.set(name, opts.deployingPolls ?? 1);
        return { status: 200, body: { ...updated, status: 'deploying' }, headers: { etag: updated.entity_tag } };
      }
      if (req.method === 'DELETE') {
        functions.delete(name);
        return { status: 202 };
      }
      throw new ApiError(405, 'method_not_allowed', 'method not allowed');
    }

    if (collection === 'secrets') {
      if (!name && req.method === 'GET') return { status: 200, body: { secrets: [...secrets.values()].map(hideData) } };
      if (!name && req.method === 'POST') {
        const body = await readJson(req);
        if (!isObject(body) || typeof body.name !== 'string' || !NAME.test(body.name)) {
          throw new ApiError(400, 'missing_field', 'name is required (lower-case letters, digits, hyphens)');
        }
        if (body.format !== 'generic') throw new ApiError(400, 'invalid_field', 'format must be generic');
        if (!isObject(body.data) || !Object.values(body.data).every((v) => typeof v === 'string')) {
          throw new ApiError(400, 'invalid_field', 'data must be an object of strings');
        }
        if (secrets.has(body.name)) throw new ApiError(409, 'already_exists', `secret ${body.name} already exists`);
        const s: CeSecretResource = {
          name: body.name,
          id: `secret-${body.name}`,
          format: 'generic',
          data: body.data as Record<string, string>,
          entity_tag: nextEtag(),
          created_at: new Date().toISOString(),
          resource_type: 'secret_generic_v2',
        };
        secrets.set(s.name, s);
        return { status: 201, body: hideData(s) };
      }
      if (!name) throw new ApiError(405, 'method_not_allowed', 'method not allowed');
      const s = secrets.get(name);
      if (!s) throw new ApiError(404, 'not_found', `secret ${name} not found`);
      if (req.method === 'GET') return { status: 200, body: hideData(s), headers: { etag: s.entity_tag } };
      if (req.method === 'PUT') {
        const ifMatch = req.headers['if-match'];
        if (!ifMatch) throw new ApiError(400, 'missing_if_match', 'If-Match header is required');
        if (ifMatch !== '*' && ifMatch !== s.entity_tag)
          throw new ApiError(412, 'precondition_failed', 'stale If-Match');
        const body = await readJson(req);
        if (!isObject(body) || !isObject(body.data) || body.format !== 'generic') {
          throw new ApiError(400, 'invalid_body', 'format generic and data are required');
        }
        const updated = { ...s, data: body.data as Record<string, string>, entity_tag: nextEtag() };
        secrets.set(name, updated);
        return { status: 200, body: hideData(updated) };
      }
      if (req.method === 'DELETE') {
        secrets.delete(name);
        return { status: 202 };
      }
      throw new ApiError(405, 'method_not_allowed', 'method not allowed');
    }
    throw new ApiError(404, 'not_found', 'unknown path');
  };

  // Secret values are write-only through the API, as in Code Engine's list views.
  const hideData = (s: CeSecretResource) => ({
    ...s,
    data: Object.fromEntries(Object.keys(s.data).map((k) => [k, '***'])),
  });

  const makeFunction = (body: Record<string, unknown> & { name: string }): CeFunctionResource => {
    const sub = 'lockstep-local';
    return {
      name: body.name,
      id: `fn-${body.name}`,
      project_id: opts.projectId,
      region,
      runtime: String(body.runtime),
      code_reference: String(body.code_reference),
      code_binary: !String(body.code_reference).startsWith('data:'),
      code_main: typeof body.code_main === 'string' ? body.code_main : 'main',
      ...(typeof body.code_secret === 'string' ? { code_secret: body.code_secret } : {}),
      managed_domain_mappings: String(body.managed_domain_mappings ?? 'local_public'),
      run_env_variables: (body.run_env_variables as Record<string, unknown>[] | undefined) ?? [],
      run_compute_resource_token_enabled: body.run_compute_resource_token_enabled === true,
      scale_concurrency: typeof body.scale_concurrency === 'number' ? body.scale_concurrency : 1,
      scale_cpu_limit: String(body.scale_cpu_limit ?? '1'),
      scale_memory_limit: String(body.scale_memory_limit ?? '4G'),
      scale_down_delay: typeof body.scale_down_delay === 'number' ? body.scale_down_delay : 1,
      scale_max_execution_time: typeof body.scale_max_execution_time === 'number' ? body.scale_max_execution_time : 60,
      entity_tag: nextEtag(),
      status: 'ready',
      endpoint: `https://${body.name}.${sub}.${region}.codeengine.appdomain.cloud`,
      endpoint_internal: `http://${body.name}.${sub}.function.cluster.local`,
      created_at: new Date().toISOString(),
      resource_type: 'function_v2',
      href: `${baseUrl}/projects/${opts.projectId}/functions/${body.name}`,
    };
  };

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const record = (status: number) =>
      calls.push({
        method: req.method ?? 'GET',
        path: url.pathname,
        ...(url.searchParams.get('version') ? { version: url.searchParams.get('version')! } : {}),
        status,
        ...(req.headers['if-match'] ? { ifMatch: String(req.headers['if-match']) } : {}),
        ...(req.headers['content-type'] ? { contentType: String(req.headers['content-type']) } : {}),
      });
    handle(req)
      .then(({ status, body, headers }) => {
        record(status);
        res.writeHead(status, { 'content-type': 'application/json', ...headers });
        res.end(body === undefined ? '' : JSON.stringify(body));
      })
      .catch((err: unknown) => {
        const e = err instanceof ApiError ? err : new ApiError(500, 'internal', 'internal error');
        record(e.status);
        res.writeHead(e.status, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({ errors: [{ code: e.code, message: e.message }], status_code: e.status, trace: 'local' }),
        );
      });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v2`;
  return {
    url: baseUrl,
    projectId: opts.projectId,
    functions,
    secrets,
    calls,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
