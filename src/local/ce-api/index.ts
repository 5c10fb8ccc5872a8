/**
 * A local stand-in for the Code Engine REST API v2 (functions, secrets, runtimes): a real HTTP server on 127.0.0.1
 * that validates requests the way the published API does — `?version=` on every call, an IAM bearer token, the field
 * patterns and ranges of a function (rules.ts), `application/merge-patch+json` and `If-Match: <entity_tag>` on update
 * (412 when stale) — and reports readiness in `status` + `status_details.reason`, including the failures a deploy must
 * catch (`ready_last_update_failed`, `no_code_bundle`). Sources of every rule: README.md next to this file.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  ApiError,
  DEFAULT_CPU,
  DEFAULT_MEMORY,
  isImageReference,
  liveRuntimes,
  validateCpuMemory,
  validateFunctionFields,
} from './rules.js';

/** Versions the Node SDK accepts (`?version=`): 2021-03-31 … 2026-06-15. */
export const CE_API_MIN_VERSION = '2021-03-31';
export const CE_API_MAX_VERSION = '2026-06-15';
export { CE_RUNTIME_LIFECYCLE, FUNCTION_CPU_MEMORY, INLINE_CODE_LIMIT_BYTES } from './rules.js';

const NAME = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;

export type FunctionStatus = 'offline' | 'deploying' | 'ready' | 'failed';
/** `FunctionStatus.Constants.Reason` of the SDK. */
export type FunctionReason =
  | 'offline'
  | 'deploying_configuring_routes'
  | 'ready_update_in_progress'
  | 'deploying'
  | 'ready_last_update_failed'
  | 'ready'
  | 'unknown_reason'
  | 'no_code_bundle';

/** How the next rollout of a function ends (tests choose; a missing code bundle picks `no_code_bundle` itself). */
export type RolloutOutcome = 'ready' | 'ready_last_update_failed' | 'no_code_bundle' | 'never_ready';

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
  status: FunctionStatus;
  status_details: { reason: FunctionReason };
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
  /** Makes the next create or update of function `name` end in `outcome` once its deploying polls are over. */
  failNextRollout(name: string, outcome: Exclude<RolloutOutcome, 'ready'>): void;
  close(): Promise<void>;
}

export interface CeApiOptions {
  projectId: string;
  region?: string;
  /** Decides whether a bearer token is valid (e.g. verify it against the local IAM). Default: any non-empty token. */
  acceptToken?: (token: string) => boolean | Promise<boolean>;
  /** GETs a created or updated function answers as in progress before its rollout ends (default 1). */
  deployingPolls?: number;
  /** Whether a code bundle image exists (wire it to the registry stand-in). Default: every image exists. */
  codeBundleExists?: (ref: string) => boolean | Promise<boolean>;
  /** Clock for runtime end of life (default: the wall clock). */
  nowMs?: () => number;
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

interface Rollout {
  kind: 'create' | 'update';
  pollsLeft: number;
  outcome: RolloutOutcome;
}

/** A new function deploys; an updated one stays `ready` while the update rolls out (SDK `FunctionStatus` reasons). */
function inProgress(kind: 'create' | 'update'): Pick<CeFunctionResource, 'status' | 'status_details'> {
  return kind === 'create'
    ? { status: 'deploying', status_details: { reason: 'deploying' } }
    : { status: 'ready', status_details: { reason: 'ready_update_in_progress' } };
}

/** Where a rollout ends. The status that accompanies each failure reason is the stand-in's choice (README). */
function endState(r: Rollout): Pick<CeFunctionResource, 'status' | 'status_details'> {
  if (r.outcome === 'no_code_bundle') return { status: 'failed', status_details: { reason: 'no_code_bundle' } };
  if (r.outcome === 'ready_last_update_failed') {
    return r.kind === 'update'
      ? { status: 'ready', status_details: { reason: 'ready_last_update_failed' } }
      : { status: 'failed', status_details: { reason: 'unknown_reason' } };
  }
  return { status: 'ready', status_details: { reason: 'ready' } };
}

function requireContentType(req: IncomingMessage, type: string): void {
  const got = String(req.headers['content-type'] ?? '')
    .split(';')[0]!
    .trim()
    .toLowerCase();
  if (got !== type) throw new ApiError(415, 'unsupported_media_type', `Content-Type must be ${type}`);
}

/** Values a `null` in a merge patch (RFC 7386) resets an optional field to. */
const PATCH_DEFAULTS: Record<string, unknown> = {
  code_main: 'main',
  managed_domain_mappings: 'local_public',
  run_env_variables: [],
  run_compute_resource_token_enabled: false,
  scale_concurrency: 1,
  scale_cpu_limit: DEFAULT_CPU,
  scale_memory_limit: DEFAULT_MEMORY,
  scale_down_delay: 1,
  scale_max_execution_time: 60,
};

/** Applies a JSON merge patch (RFC 7386) to a function: a value replaces, `null` removes (back to the default). */
function mergePatch(fn: CeFunctionResource, patch: Record<string, unknown>): CeFunctionResource {
  const next: Record<string, unknown> = { ...fn };
  for (const [k, v] of Object.entries(patch)) {
    if (v !== null) next[k] = v;
    else if (k === 'runtime' || k === 'code_reference')
      throw new ApiError(400, 'invalid_field', `${k} cannot be removed`);
    else if (k in PATCH_DEFAULTS) next[k] = PATCH_DEFAULTS[k];
    else delete next[k];
  }
  next.code_binary = isImageReference(String(next.code_reference)) || next.code_binary === true;
  return next as unknown as CeFunctionResource;
}

/** Starts the stand-in on 127.0.0.1 (random port). */
export async function startCeApiStandIn(opts: CeApiOptions): Promise<CeApiStandIn> {
  const region = opts.region ?? 'us-south';
  const functions = new Map<string, CeFunctionResource>();
  const secrets = new Map<string, CeSecretResource>();
  const rollouts = new Map<string, Rollout>();
  const forced = new Map<string, Exclude<RolloutOutcome, 'ready'>>();
  const calls: CeApiCall[] = [];
  // Unquoted, like the SDK's examples ("entity_tag":"2385407409"); the ETag header carries the same value.
  let etagCounter = 2_385_407_409;
  const nextEtag = () => String(++etagCounter);
  const acceptToken = opts.acceptToken ?? ((t: string) => t.length > 0);
  const nowMs = opts.nowMs ?? Date.now;
  const bundleExists = opts.codeBundleExists ?? (() => true);
  let baseUrl = '';

  /** Starts a rollout; a code bundle that does not exist ends it in `no_code_bundle`. */
  const startRollout = async (fn: CeFunctionResource, kind: 'create' | 'update'): Promise<void> => {
    let outcome: RolloutOutcome = forced.get(fn.name) ?? 'ready';
    forced.delete(fn.name);
    if (outcome === 'ready' && isImageReference(fn.code_reference) && !(await bundleExists(fn.code_reference))) {
      outcome = 'no_code_bundle';
    }
    rollouts.set(fn.name, { kind, pollsLeft: opts.deployingPolls ?? 1, outcome });
    Object.assign(fn, inProgress(kind));
  };

  /** What a GET sees: in progress while polls are left, then the rollout's end state (a new entity tag). */
  const observe = (fn: CeFunctionResource): CeFunctionResource => {
    const r = rollouts.get(fn.name);
    if (!r) return fn;
    if (r.outcome === 'never_ready' || r.pollsLeft > 0) {
      r.pollsLeft--;
      return fn;
    }
    rollouts.delete(fn.name);
    Object.assign(fn, endState(r), { entity_tag: nextEtag() });
    return fn;
  };

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
      return { status: 200, body: { function_runtimes: liveRuntimes(nowMs()) } };
    }
    if (parts[1] !== 'projects' || !parts[2]) throw new ApiError(404, 'not_found', 'unknown path');
    if (parts[2] !== opts.projectId) throw new ApiError(404, 'project_not_found', `project ${parts[2]} not found`);
    const collection = parts[3];
    const name = parts[4];
    if (parts.length > 5) throw new ApiError(404, 'not_found', 'unknown path');

    if (collection === 'functions') {
      if (!name && req.method === 'GET') {
        return { status: 200, body: { functions: [...functions.values()].map(observe), limit: 100 } };
      }
      if (!name && req.method === 'POST') {
        requireContentType(req, 'application/json');
        const body = await readJson(req);
        if (!isObject(body)) throw new ApiError(400, 'invalid_body', 'a JSON object is required');
        for (const f of ['name', 'runtime', 'code_reference']) {
          if (body[f] === undefined || body[f] === null) throw new ApiError(400, 'missing_field', `${f} is required`);
        }
        validateFunctionFields(body, 'create', nowMs());
        const fn = makeFunction(body as Record<string, unknown> & { name: string });
        validateCpuMemory(fn.scale_cpu_limit, fn.scale_memory_limit);
        if (functions.has(fn.name)) throw new ApiError(409, 'already_exists', `function ${fn.name} already exists`);
        functions.set(fn.name, fn);
        await startRollout(fn, 'create');
        return { status: 201, body: fn, headers: { etag: fn.entity_tag } };
      }
      if (!name) throw new ApiError(405, 'method_not_allowed', 'method not allowed');
      const fn = functions.get(name);
      if (!fn) throw new ApiError(404, 'not_found', `function ${name} not found`);
      if (req.method === 'GET') {
        const seen = observe(fn);
        return { status: 200, body: seen, headers: { etag: seen.entity_tag } };
      }
      if (req.method === 'PATCH') {
        requireContentType(req, 'application/merge-patch+json');
        const ifMatch = req.headers['if-match'];
        if (!ifMatch) throw new ApiError(400, 'missing_if_match', 'If-Match header is required (the entity_tag)');
        if (ifMatch !== '*' && ifMatch !== fn.entity_tag) {
          throw new ApiError(
            412,
            'precondition_failed',
            'If-Match does not match the current entity_tag: read the function again',
          );
        }
        const body = await readJson(req);
        if (!isObject(body)) throw new ApiError(400, 'invalid_body', 'a JSON object is required');
        validateFunctionFields(body, 'update', nowMs());
        const updated = mergePatch(fn, body);
        validateCpuMemory(updated.scale_cpu_limit, updated.scale_memory_limit);
        updated.entity_tag = nextEtag();
        functions.set(name, updated);
        await startRollout(updated, 'update');
        return { status: 200, body: updated, headers: { etag: updated.entity_tag } };
      }
      if (req.method === 'DELETE') {
        functions.delete(name);
        rollouts.delete(name);
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
      code_binary: isImageReference(String(body.code_reference)) || body.code_binary === true,
      code_main: typeof body.code_main === 'string' ? body.code_main : 'main',
      ...(typeof body.code_secret === 'string' ? { code_secret: body.code_secret } : {}),
      managed_domain_mappings: String(body.managed_domain_mappings ?? 'local_public'),
      run_env_variables: (body.run_env_variables as Record<string, unknown>[] | undefined) ?? [],
      run_compute_resource_token_enabled: body.run_compute_resource_token_enabled === true,
      scale_concurrency: typeof body.scale_concurrency === 'number' ? body.scale_concurrency : 1,
      scale_cpu_limit: String(body.scale_cpu_limit ?? DEFAULT_CPU),
      scale_memory_limit: String(body.scale_memory_limit ?? DEFAULT_MEMORY),
      scale_down_delay: typeof body.scale_down_delay === 'number' ? body.scale_down_delay : 1,
      scale_max_execution_time: typeof body.scale_max_execution_time === 'number' ? body.scale_max_execution_time : 60,
      entity_tag: nextEtag(),
      status: 'deploying',
      status_details: { reason: 'deploying' },
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
    failNextRollout: (name, outcome) => {
      forced.set(name, outcome);
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
