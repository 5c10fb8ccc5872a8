import type { DrillService, RotationService, Stores } from '../app/index.js';
import type { Clock, GroupId, HttpRequest, HttpResponse, LineageRecord, Logger, Trigger } from '../core/index.js';
import { AppError, asGroupId, asKeyVersionId, asRunId, hasCode, jsonResponse } from '../core/index.js';
import { checkLineageText } from '../lineage/index.js';
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
  EXPORT_PAGE_MAX_BYTES,
  type ExportBody,
  encodeExportPosition,
  exportPage,
  toCsvRows,
  toJsonlLine,
} from './export.js';
import { toErrorResponse } from './httpStatus.js';
import { assertOperationSupported, queryNames, type RouteInput, readInput } from './input.js';
import { buildOpenApiDocument } from './openapi.js';
import { OPERATIONS, type OperationSpec } from './operations.js';
import { checkQueryNames, DEFAULT_EXPORT_LIMIT, parseTime } from './params.js';
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
  /** Public URL of the API root (OpenAPI `servers`, links, the page's expected Origin). */
  publicBaseUrl?: string;
  /** `LOCKSTEP_UI_SESSION_SECRET`: the page's session key is derived from it (else random per process). */
  sessionSecret?: string;
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
  /** Path, query and body validated against the route's operation (`operations.ts`); empty for page routes. */
  input: RouteInput;
}

export interface Route {
  method: 'GET' | 'POST';
  /** Path template: `/v1/groups/{groupId}`. */
  path: string;
  /** `read`/`act` need a bearer token with that permission; `none` is public; `page` is authenticated by the page. */
  access: Permission | 'none' | 'page';
  /** Query parameter names the route accepts. */
  query: readonly string[];
  /** The operation in `operations.ts` that documents the route; its schemas validate the input. */
  op?: OperationSpec;
  handle(ctx: RouteContext): Promise<HttpResponse>;
}

export { MAX_BODY_BYTES } from './input.js';

/** A route documented by `op`: method, path, query names and input validation all come from the operation. */
function fromOp(op: OperationSpec, access: Route['access'], handle: Route['handle']): Route {
  assertOperationSupported(op);
  return { method: op.method, path: op.path, access, query: queryNames(op), op, handle };
}
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
    let bytes = Buffer.byteLength(chunks[0]!);
    for await (const record of stores.lineage.exportAll(groupId, after)) {
      if (count === limit) {
        more = true;
        break;
      }
      const text = format === 'csv' ? toCsvRows(record) : toJsonlLine(record);
      // bounded by bytes too (Code Engine's 5 MB body limit; one page stays one quick response); one record always fits
      const size = Buffer.byteLength(text);
      if (count > 0 && bytes + size > EXPORT_PAGE_MAX_BYTES) {
        more = true;
        break;
      }
      chunks.push(text);
      bytes += size;
      count += 1;
      last = record;
    }
    // DR drill records follow the generations on the last JSONL page (lines with "kind": "drill").
    if (!more && format === 'jsonl' && stores.drills) {
      for (const id of groupId ? [groupId] : await allGroupIds()) {
        for (const d of await stores.drills.chain(id)) chunks.push(`${JSON.stringify(drillView(d))}\n`);
      }
    }
    // Late Activity Tracker evidence records follow on the same page (lines with "kind": "evidence").
    if (!more && format === 'jsonl' && stores.evidence) {
      for (const id of groupId ? [groupId] : await allGroupIds()) {
        for (const e of await stores.evidence.chain(id)) chunks.push(`${JSON.stringify(drillView(e))}\n`);
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
    fromOp(OPERATIONS.getOpenApi, 'none', async () => ({
      statusCode: 200,
      headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'public, max-age=300' },
      body: openApi,
    })),
    fromOp(OPERATIONS.listGroups, 'read', async ({ input }) => {
      const limit = input.query.limit as number;
      const scope = 'groups';
      const cursor = input.query.cursor === undefined ? undefined : decodeCursor(input.query.cursor as string, scope);
      const page = await storeCursorCall(() => stores.groups.list({ limit, cursor }));
      return jsonResponse(
        200,
        pageBody(`${basePath}/v1/groups`, {}, limit, page.items.map(groupView), page.next, scope),
      );
    }),
    fromOp(OPERATIONS.getGroup, 'read', async ({ params }) =>
      jsonResponse(200, groupView(await requireGroup(asGroupId(params.groupId)))),
    ),
    fromOp(OPERATIONS.listGenerations, 'read', async ({ input, params }) => {
      const groupId = asGroupId(params.groupId);
      const limit = input.query.limit as number;
      const sinceMs = parseTime('since', input.query.since as string | undefined);
      const untilMs = parseTime('until', input.query.until as string | undefined);
      if (sinceMs !== undefined && untilMs !== undefined && sinceMs > untilMs) {
        throw new AppError('VALIDATION_FAILED', 'since must not be after until', { details: { field: 'since' } });
      }
      const scope = `generations:${groupId}:${sinceMs ?? ''}:${untilMs ?? ''}`;
      const cursor = input.query.cursor === undefined ? undefined : decodeCursor(input.query.cursor as string, scope);
      await requireGroup(groupId);
      const page = await storeCursorCall(() => stores.lineage.list(groupId, { limit, cursor, sinceMs, untilMs }));
      const filters = { since: input.query.since, until: input.query.until } as Record<string, string | undefined>;
      const path = `${basePath}/v1/groups/${groupId}/generations`;
      return jsonResponse(200, pageBody(path, filters, limit, page.items.map(lineageView), page.next, scope));
    }),
    fromOp(OPERATIONS.getGeneration, 'read', async ({ input, params }) => {
      const groupId = asGroupId(params.groupId);
      await requireGroup(groupId);
      return jsonResponse(200, lineageView(await stores.lineage.get(groupId, input.path.n as number)));
    }),
    fromOp(OPERATIONS.getVersion, 'read', async ({ params }) => {
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
    }),
    fromOp(OPERATIONS.getProof, 'read', async ({ params }) => {
      const groupId = asGroupId(params.groupId);
      await requireGroup(groupId);
      const { proof } = await buildProof({ stores, clock: deps.clock, keys }, groupId);
      return jsonResponse(200, proof);
    }),
    fromOp(OPERATIONS.exportLineage, 'read', async ({ req, input }) => {
      const format = input.query.format as 'jsonl' | 'csv';
      const groupId = input.query.groupId === undefined ? undefined : asGroupId(input.query.groupId);
      return exportBody(format, groupId, exportPage('/v1/export', req.query));
    }),
    fromOp(OPERATIONS.rotateNow, 'act', async ({ input, params, principal }) => {
      const groupId = asGroupId(params.groupId);
      const body = input.body as { reason?: string; force?: boolean };
      const service = requireService(deps.service);
      await requireGroup(groupId);
      const trigger: Trigger = {
        kind: 'operator',
        by: (principal as Principal).iamId,
        // Free text ends up in the signed history, CSV exports and the timeline page: the lineage text rules.
        ...(body.reason !== undefined ? { reason: checkLineageText('reason', body.reason, 'reason') } : {}),
      };
      const { runId } = await service.rotateNow(groupId, { trigger, ...(body.force ? { force: true } : {}) });
      deps.logger.info('rotation requested', { groupId, runId, by: trigger.by });
      const runPath = `${basePath}/v1/runs/${runId}`;
      return jsonResponse(202, { runId, groupId, status: 'accepted', links: { run: runPath } }, { location: runPath });
    }),
    // auditors read runs too: the view never carries the escrow ciphertext, for any role (src/api/README.md)
    fromOp(OPERATIONS.getRun, 'read', async ({ params }) => {
      const runId = asRunId(params.runId);
      const run = deps.service ? await deps.service.getRun(runId) : (await stores.runs.get(runId)).value;
      return jsonResponse(200, runView(run));
    }),
    ...(['retry', 'stop'] as const).map((action) =>
      fromOp(
        action === 'retry' ? OPERATIONS.retryRun : OPERATIONS.stopRun,
        'act',
        async ({ input, params, principal }) => {
          const runId = asRunId(params.runId);
          const body = (input.body ?? {}) as { reason?: string };
          const service = requireService(deps.service);
          const trigger: Trigger = {
            kind: 'operator',
            by: (principal as Principal).iamId,
            ...(body.reason !== undefined ? { reason: checkLineageText('reason', body.reason, 'reason') } : {}),
          };
          const done =
            action === 'retry' ? await service.retryRun(runId, { trigger }) : await service.stopRun(runId, { trigger });
          deps.logger.info(`run ${done.action}`, { runId, groupId: done.groupId, by: trigger.by });
          const runPath = `${basePath}/v1/runs/${runId}`;
          return jsonResponse(
            action === 'retry' ? 202 : 200,
            { ...done, links: { run: runPath } },
            action === 'retry' ? { location: runPath } : {},
          );
        },
      ),
    ),
    ...createDrRoutes({
      stores,
      ...(deps.drills ? { drills: deps.drills } : {}),
      ...(deps.keyProtectEndpoints ? { keyProtectEndpoints: deps.keyProtectEndpoints } : {}),
      requireGroup,
      fromOp,
      page: (path, limit, items, storeNext, scope) => pageBody(path, {}, limit, items, storeNext, scope),
      basePath,
      nowMs: () => deps.clock.nowMs(),
    }),
  ];
  // One schema source: an API route that is not an operation of operations.ts would be neither documented nor validated.
  for (const r of apiRoutes) {
    if (!r.op) {
      throw new AppError(
        'CONFIG_INVALID',
        `${r.method} ${r.path} is not defined in src/api/operations.ts (use fromOp)`,
      );
    }
  }

  const routes: Route[] = [
    ...apiRoutes,
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
      const input = match.route.op ? readInput(match.route.op, req, match.params) : { path: {}, query: {} };
      res = await match.route.handle({ req, params: match.params, principal, input });
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

/**
 * The body of a collection page (`shapes.ts` `page`): items, the limit, a link to the first page and, when more
 * follow, a link to the next page with its API cursor (the store's cursor wrapped for `scope`).
 */
function pageBody<T>(
  path: string,
  filters: Record<string, string | undefined>,
  limit: number,
  items: T[],
  storeNext: string | undefined,
  scope: string,
): { items: T[]; limit: number; first: { href: string }; next?: { href: string; cursor: string } } {
  const href = (cursor?: string) => {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(filters)) if (v !== undefined) q.set(k, v);
    q.set('limit', String(limit));
    if (cursor !== undefined) q.set('cursor', cursor);
    return `${path}?${q.toString()}`;
  };
  const cursor = storeNext === undefined ? undefined : encodeCursor(storeNext, scope);
  return { items, limit, first: { href: href() }, ...(cursor ? { next: { href: href(cursor), cursor } } : {}) };
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

function basePathOf(publicBaseUrl: string): string {
  try {
    return new URL(publicBaseUrl).pathname.replace(/\/+$/, '');
  } catch (err) {
    throw new AppError('CONFIG_INVALID', 'publicBaseUrl must be an absolute URL such as https://lockstep.example', {
      cause: err,
    });
  }
}
