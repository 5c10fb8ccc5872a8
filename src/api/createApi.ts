import type { DrillService, RotationService, Stores } from '../app/index.js';
import type { Clock, GroupId, HttpRequest, HttpResponse, LineageRecord, Logger, Trigger } from '../core/index.js';
import { AppError, asGroupId, asKeyVersionId, asRunId, hasCode, jsonResponse } from '../core/index.js';
import {
  type ApiAuthConfig,
  bearerToken,
  createAuthenticator,
  type Permission,
  type Principal,
  requirePermission,
} from './auth.js';
import { decodeCursor, encodeCursor } from './cursor.js';
import { createDrRoutes, drillView } from './drillRoutes.js';
import {
  csvHeader,
  decodeExportPosition,
  type ExportBody,
  encodeExportPosition,
  exportPage,
  toCsvRows,
  toJsonlLine,
} from './export.js';
import { toErrorResponse } from './httpStatus.js';
import { buildOpenApiDocument } from './openapi.js';
import {
  checkQueryNames,
  DEFAULT_EXPORT_LIMIT,
  parseFormat,
  parseGeneration,
  parseLimit,
  parseTime,
} from './params.js';
import { buildProof, loadTrustedKeys } from './proof.js';
import { createUiRoutes } from './uiRoutes.js';
import { groupView, lineageView, runView } from './views.js';

/** Everything the API needs. */
export interface ApiDeps {
  stores: Stores;
  /** The rotation use cases; without it the operator routes answer CONFIG_INVALID. */
  service?: RotationService;
  auth: ApiAuthConfig;
  /** Trusted checkpoint public keys (Ed25519, PEM) by key id. */
  checkpointPublicKeys: Record<string, string>;
  clock: Clock;
  logger: Logger;
  /** Public URL of the API root (OpenAPI `servers`, links, `Secure` cookies when https). */
  publicBaseUrl?: string;
  /** DR drills (`POST /v1/groups/{id}/drills`); without it that route answers CONFIG_INVALID. */
  drills?: DrillService;
  /** Key Protect URL per region, reported by `GET /v1/groups/{id}/endpoints`. */
  keyProtectEndpoints?: Readonly<Record<string, string>>;
}

/** The transport-neutral API function. */
export type ApiHandler = (req: HttpRequest) => Promise<HttpResponse>;

/** A matched request. */
export interface RouteContext {
  req: HttpRequest;
  params: Record<string, string>;
  principal?: Principal;
}

export interface Route {
  method: 'GET' | 'POST';
  /** Path template: `/v1/groups/{groupId}`. */
  path: string;
  /** `read`/`act` need a bearer token with that permission; `none` is public; `page` is authenticated by the page. */
  access: Permission | 'none' | 'page';
  /** Query parameter names the route accepts. */
  query: readonly string[];
  handle(ctx: RouteContext): Promise<HttpResponse>;
}

/** Largest request body accepted (the only body is a small JSON rotation request or the login form). */
export const MAX_BODY_BYTES = 16 * 1024;
const MAX_PATH_CHARS = 2048;

/**
 * Creates the version history API: `/v1/*` (IAM bearer tokens; auditor reads, operator acts), `/openapi.json` and the
 * timeline page under `/ui`. Every error goes through `toErrorResponse`.
 */
export function createApi(deps: ApiDeps): ApiHandler {
  const authenticator = createAuthenticator(deps.auth);
  const basePath = deps.publicBaseUrl === undefined ? '' : basePathOf(deps.publicBaseUrl);
  const openApi = JSON.stringify(buildOpenApiDocument(deps.publicBaseUrl ?? '/'));
  const { stores } = deps;
  const keys = loadTrustedKeys(deps.checkpointPublicKeys);

  const requireGroup = async (groupId: GroupId) => {
    const found = await stores.groups.find(groupId);
    if (!found) {
      throw new AppError('GROUP_NOT_FOUND', `No group ${groupId}; list groups with GET /v1/groups`, {
        details: { groupId },
      });
    }
    return found.value;
  };

  const allGroupIds = async (): Promise<GroupId[]> => {
    const ids: GroupId[] = [];
    let cursor: string | undefined;
    do {
      const page = await stores.groups.list({ limit: 200, ...(cursor ? { cursor } : {}) });
      ids.push(...page.items.map((g) => g.id));
      cursor = page.next;
    } while (cursor);
    return ids;
  };

  const exportBody: ExportBody = async (format, groupId, page) => {
    if (groupId !== undefined) await requireGroup(groupId);
    const limit = page.limit ?? DEFAULT_EXPORT_LIMIT;
    const scope = `export:${format}:${groupId ?? '*'}`;
    const after = page.cursor === undefined ? undefined : decodeExportPosition(decodeCursor(page.cursor, scope));
    // Code Engine functions answer with one body, so the export is assembled from the store's stream (key-range
    // pages) into chunks, at most `limit` records per response; the rest follows the `next` link (a cursor).
    const chunks: string[] = [format === 'csv' && !after ? csvHeader() : ''];
    let count = 0;
    let last: LineageRecord | undefined;
    let more = false;
    for await (const record of stores.lineage.exportAll(groupId, after)) {
      if (count === limit) {
        more = true;
        break;
      }
      chunks.push(format === 'csv' ? toCsvRows(record) : toJsonlLine(record));
      count += 1;
      last = record;
    }
    // DR drill records follow the generations on the last JSONL page (lines with "kind": "drill").
    if (!more && format === 'jsonl' && stores.drills) {
      for (const id of groupId ? [groupId] : await allGroupIds()) {
        for (const d of await stores.drills.chain(id)) chunks.push(`${JSON.stringify(drillView(d))}\n`);
      }
    }
    const stamp = new Date(deps.clock.nowMs()).toISOString().slice(0, 10);
    const name = `lockstep-lineage${groupId ? `-${groupId}` : ''}-${stamp}${after ? '-continued' : ''}.${format}`;
    const headers: Record<string, string> = {
      'content-type':
        format === 'csv' ? 'text/csv; charset=utf-8; header=present' : 'application/x-ndjson; charset=utf-8',
      'content-disposition': `attachment; filename="${name}"`,
      'x-lockstep-records': String(count),
    };
    if (more && last) {
      const cursor = encodeCursor(encodeExportPosition(last), scope);
      const q = new URLSearchParams({ format, ...(groupId ? { groupId } : {}), limit: String(limit), cursor });
      headers['x-lockstep-next-cursor'] = cursor;
      headers.link = `<${basePath}${page.path}?${q.toString()}>; rel="next"`;
    }
    return { statusCode: 200, headers, body: chunks.join('') } satisfies HttpResponse;
  };

  const apiRoutes: Route[] = [
    {
      method: 'GET',
      path: '/openapi.json',
      access: 'none',
      query: [],
      handle: async () => ({
        statusCode: 200,
        headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'public, max-age=300' },
        body: openApi,
      }),
    },
    {
      method: 'GET',
      path: '/v1/groups',
      access: 'read',
      query: ['limit', 'cursor'],
      async handle({ req }) {
        const limit = parseLimit(req.query.limit);
        const scope = 'groups';
        const cursor = req.query.cursor === undefined ? undefined : decodeCursor(req.query.cursor, scope);
        const page = await storeCursorCall(() => stores.groups.list({ limit, cursor }));
        return jsonResponse(200, {
          items: page.items.map(groupView),
          ...(page.next ? { next: encodeCursor(page.next, scope) } : {}),
        });
      },
    },
    {
      method: 'GET',
      path: '/v1/groups/{groupId}',
      access: 'read',
      query: [],
      handle: async ({ params }) => jsonResponse(200, groupView(await requireGroup(asGroupId(params.groupId)))),
    },
    {
      method: 'GET',
      path: '/v1/groups/{groupId}/generations',
      access: 'read',
      query: ['limit', 'cursor', 'since', 'until'],
      async handle({ req, params }) {
        const groupId = asGroupId(params.groupId);
        const limit = parseLimit(req.query.limit);
        const sinceMs = parseTime('since', req.query.since);
        const untilMs = parseTime('until', req.query.until);
        if (sinceMs !== undefined && untilMs !== undefined && sinceMs > untilMs) {
          throw new AppError('VALIDATION_FAILED', 'since must not be after until', { details: { field: 'since' } });
        }
        const scope = `generations:${groupId}:${sinceMs ?? ''}:${untilMs ?? ''}`;
        const cursor = req.query.cursor === undefined ? undefined : decodeCursor(req.query.cursor, scope);
        await requireGroup(groupId);
        const page = await storeCursorCall(() => stores.lineage.list(groupId, { limit, cursor, sinceMs, untilMs }));
        return jsonResponse(200, {
          items: page.items.map(lineageView),
          ...(page.next ? { next: encodeCursor(page.next, scope) } : {}),
        });
      },
    },
    {
      method: 'GET',
      path: '/v1/groups/{groupId}/generations/{n}',
      access: 'read',
      query: [],
      async handle({ params }) {
        const groupId = asGroupId(params.groupId);
        const n = parseGeneration(params.n as string);
        await requireGroup(groupId);
        return jsonResponse(200, lineageView(await stores.lineage.get(groupId, n)));
      },
    },
    {
      method: 'GET',
      path: '/v1/versions/{keyVersionId}',
      access: 'read',
      query: [],
      async handle({ params }) {
        const keyVersionId = asKeyVersionId(params.keyVersionId?.toLowerCase());
        const record = await stores.lineage.findByKeyVersion(keyVersionId);
        const member = record?.members.find((m) => m.keyVersionId.toLowerCase() === keyVersionId);
        if (!record || !member) {
          throw new AppError('VERSION_NOT_FOUND', `No lineage record holds key version ${keyVersionId}`, {
            details: { keyVersionId },
          });
        }
        const view = lineageView(record);
        return jsonResponse(200, {
          keyVersionId: member.keyVersionId,
          groupId: view.groupId,
          generation: view.generation,
          member: view.members.find((m) => m.keyVersionId === member.keyVersionId),
          record: view,
        });
      },
    },
    {
      method: 'GET',
      path: '/v1/groups/{groupId}/proof',
      access: 'read',
      query: [],
      async handle({ params }) {
        const groupId = asGroupId(params.groupId);
        await requireGroup(groupId);
        const { proof } = await buildProof({ stores, clock: deps.clock, keys }, groupId);
        return jsonResponse(200, proof);
      },
    },
    {
      method: 'GET',
      path: '/v1/export',
      access: 'read',
      query: ['format', 'groupId', 'limit', 'cursor'],
      async handle({ req }) {
        const format = parseFormat(req.query.format);
        const groupId = req.query.groupId === undefined ? undefined : asGroupId(req.query.groupId);
        return exportBody(format, groupId, exportPage('/v1/export', req.query));
      },
    },
    {
      method: 'POST',
      path: '/v1/groups/{groupId}/rotations',
      access: 'act',
      query: [],
      async handle({ req, params, principal }) {
        const groupId = asGroupId(params.groupId);
        const body = parseRotationRequest(req);
        const service = requireService(deps.service);
        await requireGroup(groupId);
        const trigger: Trigger = {
          kind: 'operator',
          by: (principal as Principal).iamId,
          ...(body.reason ? { reason: body.reason } : {}),
        };
        const { runId } = await service.rotateNow(groupId, { trigger, ...(body.force ? { force: true } : {}) });
        deps.logger.info('rotation requested', { groupId, runId, by: trigger.by });
        const runPath = `${basePath}/v1/runs/${runId}`;
        return jsonResponse(
          202,
          { runId, groupId, status: 'accepted', links: { run: runPath } },
          { location: runPath },
        );
      },
    },
    {
      method: 'GET',
      path: '/v1/runs/{runId}',
      access: 'act',
      query: [],
      async handle({ params }) {
        const runId = asRunId(params.runId);
        const run = deps.service ? await deps.service.getRun(runId) : (await stores.runs.get(runId)).value;
        return jsonResponse(200, runView(run));
      },
    },
  ];

  const routes: Route[] = [
    ...apiRoutes,
    ...createDrRoutes({
      stores,
      ...(deps.drills ? { drills: deps.drills } : {}),
      ...(deps.keyProtectEndpoints ? { keyProtectEndpoints: deps.keyProtectEndpoints } : {}),
      requireGroup,
      parseBody: ({ req }) => parseRotationRequest(req),
      basePath,
      nowMs: () => deps.clock.nowMs(),
    }),
    ...createUiRoutes({ ...deps, authenticator, basePath, exportBody, requireGroup, keys }),
  ];
  const compiled = routes.map((r) => ({ route: r, segments: r.path.split('/').slice(1) }));

  return async function handleApiRequest(req: HttpRequest): Promise<HttpResponse> {
    const startedAtMs = deps.clock.nowMs();
    let routePath = 'unmatched';
    let principal: Principal | undefined;
    let res: HttpResponse;
    try {
      const match = matchRoute(compiled, req);
      routePath = match.route.path;
      checkQueryNames(req.query, match.route.query);
      if (match.route.access === 'read' || match.route.access === 'act') {
        principal = await authenticator.authenticate(bearerToken(req.headers));
        requirePermission(principal, match.route.access);
      }
      res = await match.route.handle({ req, params: match.params, principal });
    } catch (err) {
      res = errorResponse(err, req, deps.logger);
    }
    deps.logger.info('api request', {
      requestId: req.requestId,
      method: req.method,
      route: routePath,
      statusCode: res.statusCode,
      durationMs: deps.clock.nowMs() - startedAtMs,
      ...(principal ? { iamId: principal.iamId, role: principal.role } : {}),
    });
    return withCommonHeaders(res, req.requestId);
  };
}

/** Maps an error to its JSON response (401s get a `WWW-Authenticate` challenge). */
function errorResponse(err: unknown, req: HttpRequest, logger: Logger): HttpResponse {
  const { statusCode, body } = toErrorResponse(err, req.requestId);
  if (statusCode >= 500) {
    logger.error('api request failed', { requestId: req.requestId, path: req.path.slice(0, 200), error: err });
  }
  const headers: Record<string, string> = {};
  if (statusCode === 401) {
    headers['www-authenticate'] =
      req.headers.authorization === undefined
        ? 'Bearer realm="lockstep"'
        : `Bearer realm="lockstep", error="invalid_token", error_description="${body.error.message.replace(/["\\]/g, '')}"`;
  }
  const allow = (err as AppError | undefined)?.details?.allow;
  if (statusCode === 405 && typeof allow === 'string') headers.allow = allow;
  return jsonResponse(statusCode, body, headers);
}

function withCommonHeaders(res: HttpResponse, requestId: string): HttpResponse {
  return {
    ...res,
    headers: {
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
      ...res.headers,
      'x-request-id': requestId,
    },
  };
}

function matchRoute(
  compiled: { route: Route; segments: string[] }[],
  req: HttpRequest,
): { route: Route; params: Record<string, string> } {
  if (req.path.length > MAX_PATH_CHARS) {
    throw new AppError('VALIDATION_FAILED', `The path is longer than ${MAX_PATH_CHARS} characters`);
  }
  const path = req.path.length > 1 ? req.path.replace(/\/$/, '') : req.path;
  const parts = path.split('/').slice(1);
  const allowed: string[] = [];
  for (const { route, segments } of compiled) {
    if (segments.length !== parts.length) continue;
    const params: Record<string, string> = {};
    let ok = true;
    for (let i = 0; i < segments.length && ok; i++) {
      const seg = segments[i] as string;
      const part = parts[i] as string;
      if (seg.startsWith('{')) {
        params[seg.slice(1, -1)] = decodeSegment(part);
        ok = part !== '';
      } else ok = seg === part;
    }
    if (!ok) continue;
    if (route.method === req.method.toUpperCase()) return { route, params };
    allowed.push(route.method);
  }
  if (allowed.length) {
    throw new AppError('METHOD_NOT_ALLOWED', `Use ${allowed.join(' or ')} on ${path.slice(0, 200)}`, {
      details: { allow: allowed.join(', ') },
    });
  }
  throw new AppError('NOT_FOUND', `No route ${req.method} ${path.slice(0, 200)}; see /openapi.json`);
}

function decodeSegment(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw new AppError('VALIDATION_FAILED', 'The path has a malformed percent-encoding');
  }
}

/** A store rejecting the cursor it was given (stale, or from another store) is the client's bad cursor. */
async function storeCursorCall<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if (hasCode(err, 'VALIDATION_FAILED', 'INVALID_CURSOR')) {
      throw new AppError('INVALID_CURSOR', 'The cursor is not valid; start again without a cursor', {
        details: { field: 'cursor' },
        cause: err,
      });
    }
    throw err;
  }
}

function requireService(service: RotationService | undefined): RotationService {
  if (!service) throw new AppError('CONFIG_INVALID', 'The API was started without the rotation service');
  return service;
}

/** Reads the optional JSON body of `POST …/rotations`. */
export function parseRotationRequest(req: HttpRequest): { reason?: string; force?: boolean } {
  const raw = req.body;
  if (!raw || raw.length === 0) return {};
  if (raw.length > MAX_BODY_BYTES) {
    throw new AppError('PAYLOAD_TOO_LARGE', `The body must be at most ${MAX_BODY_BYTES} bytes`);
  }
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (type !== 'application/json') {
    throw new AppError('UNSUPPORTED_MEDIA_TYPE', 'Send the body as application/json');
  }
  let body: unknown;
  try {
    body = JSON.parse(raw.toString('utf8'));
  } catch {
    throw new AppError('VALIDATION_FAILED', 'The body is not valid JSON', { details: { field: 'body' } });
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new AppError('VALIDATION_FAILED', 'The body must be a JSON object {reason?, force?}', {
      details: { field: 'body' },
    });
  }
  const { reason, force, ...rest } = body as Record<string, unknown>;
  const unknown = Object.keys(rest);
  if (unknown.length) {
    throw new AppError('VALIDATION_FAILED', `Unknown field ${unknown[0]?.slice(0, 40)}; accepted: reason, force`, {
      details: { field: unknown[0]?.slice(0, 40) ?? '' },
    });
  }
  if (reason !== undefined) {
    // Free text ends up in CSV exports and the timeline page: printable, bounded, not a spreadsheet formula.
    if (typeof reason !== 'string' || reason.length > 500 || hasControlCharacter(reason) || /^[=+\-@]/.test(reason)) {
      throw new AppError(
        'VALIDATION_FAILED',
        'reason must be a string of at most 500 printable characters, not starting with = + - @',
        { details: { field: 'reason' } },
      );
    }
  }
  if (force !== undefined && typeof force !== 'boolean') {
    throw new AppError('VALIDATION_FAILED', 'force must be a boolean', { details: { field: 'force' } });
  }
  return { ...(reason ? { reason } : {}), ...(force ? { force } : {}) };
}

function hasControlCharacter(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

function basePathOf(publicBaseUrl: string): string {
  try {
    return new URL(publicBaseUrl).pathname.replace(/\/+$/, '');
  } catch (err) {
    throw new AppError('CONFIG_INVALID', 'publicBaseUrl must be an absolute URL such as https://lockstep.example', {
      cause: err,
    });
  }
}
