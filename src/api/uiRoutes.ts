/**
 * The timeline page's routes. The page is rendered on the server and has no scripts. `POST /ui/login` verifies a
 * pasted IAM access token (or, in the local stack only, an API key exchanged at the local IAM) like the API does,
 * then sets a short-lived sealed session (`session.ts`; never the IAM token) in an HttpOnly, SameSite=Strict cookie
 * scoped to `/ui`, `Secure` unless the page is served from a loopback http URL. Every POST is refused when it comes
 * from another origin; the operator forms (retry, stop a run) also need the `Origin` header.
 */
import { type RotationService, runActions, type Stores } from '../app/index.js';
import type { Clock, Group, GroupId, HttpRequest, HttpResponse, Logger } from '../core/index.js';
import { AppError, asGroupId, asRunId } from '../core/index.js';
import type { RotationRun } from '../rotation/index.js';
import {
  type ApiAuthConfig,
  type Authenticator,
  exchangeApiKey,
  type Principal,
  requirePermission,
  roleFor,
} from './auth.js';
import { type ExportBody, exportPage } from './export.js';
import { toErrorResponse } from './httpStatus.js';
import { parseFormat } from './params.js';
import { buildProof, type TrustedCheckpointKeys } from './proof.js';
import { createSessionSealer, SESSION_MAX_SECONDS } from './session.js';
import {
  type GroupSummary,
  type RunRow,
  renderErrorPage,
  renderGroupPage,
  renderLoginPage,
  renderOverview,
} from './ui.js';

/** Name of the page's session cookie (holds a sealed session, never the IAM token). */
export const SESSION_COOKIE = 'lockstep_session';
const MAX_FORM_BYTES = 16 * 1024;
const OVERVIEW_GROUPS = 100;
const RECENT_RUNS = 5;

const HTML_HEADERS = {
  'content-type': 'text/html; charset=utf-8',
  'content-security-policy':
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-frame-options': 'DENY',
  // not `no-referrer`: with it browsers send `Origin: null` on the login form, which the same-origin check refuses
  'referrer-policy': 'same-origin',
};

interface UiDeps {
  stores: Stores;
  auth: ApiAuthConfig;
  authenticator: Authenticator;
  keys: TrustedCheckpointKeys;
  clock: Clock;
  logger: Logger;
  publicBaseUrl?: string;
  /** Derives the session key (`LOCKSTEP_UI_SESSION_SECRET`); without it the key is random per process. */
  sessionSecret?: string;
  service?: RotationService;
  basePath: string;
  exportBody: ExportBody;
  requireGroup(groupId: GroupId): Promise<Group>;
}

interface UiRoute {
  method: 'GET' | 'POST';
  path: string;
  access: 'page' | 'none';
  query: readonly string[];
  handle(ctx: { req: HttpRequest; params: Record<string, string> }): Promise<HttpResponse>;
}

/** Parses a `Cookie` header. */
export function parseCookies(header: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (header ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i <= 0) continue;
    const name = part.slice(0, i).trim();
    if (!Object.hasOwn(out, name)) out[name] = part.slice(i + 1).trim();
  }
  return out;
}

/** `localhost`, `127.0.0.0/8` or `::1`. */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.toLowerCase().replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/** The host name of a `Host` header value (without the port). */
function hostnameOf(host: string | undefined): string {
  if (host === undefined) return '';
  try {
    return new URL(`http://${host}`).hostname;
  } catch {
    return '';
  }
}

export function createUiRoutes(deps: UiDeps): UiRoute[] {
  const base = deps.basePath;
  const publicUrl = deps.publicBaseUrl === undefined ? undefined : new URL(deps.publicBaseUrl);
  const apiKeyLogin = deps.auth.iamTokenUrl !== undefined;
  if (deps.auth.iamTokenUrl !== undefined) {
    let url: URL | undefined;
    try {
      url = new URL(deps.auth.iamTokenUrl);
    } catch {
      // reported below
    }
    if (url?.protocol !== 'http:' || !isLoopbackHost(url.hostname)) {
      throw new AppError(
        'CONFIG_INVALID',
        'The API-key login of the page is for the local stack only: auth.iamTokenUrl must be the local IAM (http on a loopback address)',
      );
    }
  }
  const sealer = createSessionSealer(deps.sessionSecret);
  /**
   * `Secure` by default; off only when the page is served from a loopback http URL (the local stack): the configured
   * public URL, else the request's Host (a request can only name a loopback Host on that machine).
   */
  const secureFor = (req: HttpRequest): string => {
    const loopbackHttp = publicUrl
      ? publicUrl.protocol === 'http:' && isLoopbackHost(publicUrl.hostname)
      : isLoopbackHost(hostnameOf(req.headers.host));
    return loopbackHttp ? '' : '; Secure';
  };
  const html = (statusCode: number, body: string, headers: Record<string, string> = {}): HttpResponse => ({
    statusCode,
    headers: { ...HTML_HEADERS, ...headers },
    body,
  });
  const clearCookie = (req: HttpRequest) =>
    `${SESSION_COOKIE}=; Path=${base}/ui; HttpOnly; SameSite=Strict; Max-Age=0${secureFor(req)}`;

  /** Renders any error as an HTML page; a missing or bad session gets the login form. */
  const errorPage = (err: unknown, req: HttpRequest, principal?: Principal): HttpResponse => {
    const { statusCode, body } = toErrorResponse(err, req.requestId);
    if (statusCode >= 500) deps.logger.error('ui request failed', { requestId: req.requestId, error: err });
    if (statusCode === 401) {
      const hadSession = parseCookies(req.headers.cookie)[SESSION_COOKIE] !== undefined;
      return html(
        401,
        renderLoginPage({
          basePath: base,
          apiKeyLogin,
          message: hadSession ? `Your session ended: ${body.error.message}` : undefined,
        }),
        hadSession ? { 'set-cookie': clearCookie(req) } : {},
      );
    }
    return html(
      statusCode,
      renderErrorPage({ basePath: base, principal, statusCode, code: body.error.code, message: body.error.message }),
    );
  };

  const session = async (req: HttpRequest): Promise<Principal> => {
    const nowSec = Math.floor(deps.clock.nowMs() / 1000);
    const s = sealer.open(parseCookies(req.headers.cookie)[SESSION_COOKIE], nowSec);
    // the role is looked up again on every request: a role taken away ends the session's rights at once
    const principal: Principal = { iamId: s.iamId, role: roleFor(deps.auth, s.iamId), expiresAtSec: s.expiresAtSec };
    requirePermission(principal, 'read');
    return principal;
  };

  /** Wraps a page handler: session first, HTML errors. */
  const page =
    (render: (req: HttpRequest, params: Record<string, string>, principal: Principal) => Promise<HttpResponse>) =>
    async ({ req, params }: { req: HttpRequest; params: Record<string, string> }): Promise<HttpResponse> => {
      let principal: Principal | undefined;
      try {
        principal = await session(req);
        return await render(req, params, principal);
      } catch (err) {
        return errorPage(err, req, principal);
      }
    };

  /**
   * Every POST: a foreign or `null` Origin is refused. Without an Origin (non-browser clients; browsers send it on
   * every POST) only a `Sec-Fetch-Site` of same-origin/none passes, and `originRequired` refuses it outright.
   */
  const sameOrigin = (req: HttpRequest, originRequired = false) => {
    const origin = req.headers.origin;
    if (origin === undefined) {
      const site = req.headers['sec-fetch-site'];
      return !originRequired && (site === undefined || site === 'same-origin' || site === 'none');
    }
    if (origin === 'null') return false;
    try {
      const o = new URL(origin);
      return publicUrl ? o.origin === publicUrl.origin : o.host === req.headers.host;
    } catch {
      return false;
    }
  };
  const requireSameOrigin = (req: HttpRequest, what: string, originRequired = false) => {
    if (!sameOrigin(req, originRequired)) {
      throw new AppError('FORBIDDEN', `The ${what} must be posted from this site's own page`);
    }
  };

  const summarize = async (group: Group): Promise<GroupSummary> => {
    const { proof, records } = await buildProof({ stores: deps.stores, clock: deps.clock, keys: deps.keys }, group.id);
    return { group, records, report: proof.chain };
  };

  return [
    {
      method: 'GET',
      path: '/ui',
      access: 'page',
      query: [],
      handle: page(async (_req, _params, principal) => {
        const groups: Group[] = [];
        let cursor: string | undefined;
        do {
          const pageOfGroups = await deps.stores.groups.list({ limit: 100, cursor });
          groups.push(...pageOfGroups.items);
          cursor = pageOfGroups.next;
        } while (cursor !== undefined && groups.length < OVERVIEW_GROUPS);
        const shown = groups.slice(0, OVERVIEW_GROUPS);
        const summaries = await Promise.all(shown.map(summarize));
        return html(
          200,
          renderOverview({
            basePath: base,
            principal,
            groups: summaries,
            more: cursor !== undefined || groups.length > OVERVIEW_GROUPS,
          }),
        );
      }),
    },
    {
      method: 'GET',
      path: '/ui/groups/{groupId}',
      access: 'page',
      query: [],
      handle: page(async (_req, params, principal) => {
        const groupId = asGroupId(params.groupId);
        const group = await deps.requireGroup(groupId);
        const { proof, records } = await buildProof(
          { stores: deps.stores, clock: deps.clock, keys: deps.keys },
          groupId,
        );
        const runs = (await deps.stores.runs.listByGroup(groupId, RECENT_RUNS)) as RotationRun[];
        return html(
          200,
          renderGroupPage({
            basePath: base,
            principal,
            group,
            runs: runs.map((r): RunRow => {
              const can = runActions(r);
              return {
                id: r.id,
                kind: r.kind,
                generation: r.generation,
                status: r.status,
                step: r.step,
                ...(r.statusReason ? { statusReason: r.statusReason } : {}),
                updatedAtMs: r.updatedAtMs,
                canRetry:
                  can.retry &&
                  (group.activeRunId === undefined || group.activeRunId === r.id) &&
                  (r.kind === 'add-region' ||
                    (r.kind === 'catch-up' && r.generation === group.currentGeneration) ||
                    r.generation === group.currentGeneration + 1),
                canStop: can.stop,
              };
            }),
            records: [...records].sort((a, b) => a.generation - b.generation),
            report: proof.chain,
            checkpoint: proof.checkpoint,
          }),
        );
      }),
    },
    {
      method: 'GET',
      path: '/ui/export',
      access: 'page',
      query: ['format', 'groupId', 'limit', 'cursor'],
      handle: page(async (req) => {
        const format = parseFormat(req.query.format);
        const groupId = req.query.groupId === undefined ? undefined : asGroupId(req.query.groupId);
        return deps.exportBody(format, groupId, exportPage('/ui/export', req.query));
      }),
    },
    {
      method: 'POST',
      path: '/ui/login',
      access: 'none',
      query: [],
      async handle({ req }) {
        try {
          requireSameOrigin(req, 'login form');
          const form = readForm(req);
          let token = form.get('token')?.trim() ?? '';
          const apiKey = form.get('apikey')?.trim() ?? '';
          // outside the local stack an API key is ignored: the answer never says whether a key is valid
          if (token === '' && apiKey !== '' && apiKeyLogin && deps.auth.iamTokenUrl !== undefined) {
            token = await exchangeApiKey(deps.auth.iamTokenUrl, apiKey);
          }
          if (token === '') throw new AppError('UNAUTHENTICATED', 'Paste an IAM access token');
          if (/^bearer\s+/i.test(token)) token = token.replace(/^bearer\s+/i, '');
          const principal = await deps.authenticator.authenticate(token);
          requirePermission(principal, 'read');
          const nowSec = Math.floor(deps.clock.nowMs() / 1000);
          const expiresAtSec = Math.min(principal.expiresAtSec ?? nowSec, nowSec + SESSION_MAX_SECONDS);
          const maxAge = Math.max(1, expiresAtSec - nowSec);
          const value = sealer.seal({ iamId: principal.iamId, issuedAtSec: nowSec, expiresAtSec: nowSec + maxAge });
          deps.logger.info('ui login', { requestId: req.requestId, iamId: principal.iamId, role: principal.role });
          return {
            statusCode: 303,
            headers: {
              location: `${base}/ui`,
              'set-cookie': `${SESSION_COOKIE}=${value}; Path=${base}/ui; HttpOnly; SameSite=Strict; Max-Age=${maxAge}${secureFor(req)}`,
            },
            body: '',
          };
        } catch (err) {
          const { statusCode, body } = toErrorResponse(err, req.requestId);
          if (statusCode === 401) {
            return html(
              401,
              renderLoginPage({
                basePath: base,
                apiKeyLogin,
                message: body.error.message,
              }),
            );
          }
          return errorPage(err, req);
        }
      },
    },
    {
      method: 'POST',
      path: '/ui/logout',
      access: 'none',
      query: [],
      async handle({ req }) {
        try {
          requireSameOrigin(req, 'logout form');
        } catch (err) {
          return errorPage(err, req);
        }
        return { statusCode: 303, headers: { location: `${base}/ui`, 'set-cookie': clearCookie(req) }, body: '' };
      },
    },
    ...(['retry', 'stop'] as const).map(
      (action): UiRoute => ({
        method: 'POST',
        path: `/ui/runs/{runId}/${action}`,
        access: 'page',
        query: [],
        handle: page(async (req, params, principal) => {
          const runId = asRunId(params.runId);
          requireSameOrigin(req, `${action} form`, true);
          requirePermission(principal, 'act');
          await deps.stores.runs.get(runId); // RUN_NOT_FOUND before anything about the form
          const form = readForm(req);
          const reason = form.get('reason')?.trim() || undefined;
          if (action === 'stop' && form.get('confirm') !== 'yes') {
            throw new AppError('VALIDATION_FAILED', 'Tick the box to confirm the stop', {
              details: { field: 'confirm' },
            });
          }
          if (!deps.service) throw new AppError('CONFIG_INVALID', 'The API was started without the rotation service');
          const trigger = { kind: 'operator' as const, by: principal.iamId, ...(reason ? { reason } : {}) };
          const done =
            action === 'retry'
              ? await deps.service.retryRun(runId, { trigger })
              : await deps.service.stopRun(runId, { trigger });
          deps.logger.info(`ui run ${done.action}`, { requestId: req.requestId, runId, by: principal.iamId });
          return { statusCode: 303, headers: { location: `${base}/ui/groups/${done.groupId}` }, body: '' };
        }),
      }),
    ),
  ];
}

function readForm(req: HttpRequest): URLSearchParams {
  const raw = req.body ?? Buffer.alloc(0);
  if (raw.length === 0 && req.headers['content-type'] === undefined) return new URLSearchParams();
  if (raw.length > MAX_FORM_BYTES) throw new AppError('PAYLOAD_TOO_LARGE', 'The form is larger than 16 KiB');
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (type !== 'application/x-www-form-urlencoded') {
    throw new AppError('UNSUPPORTED_MEDIA_TYPE', 'Post the form as application/x-www-form-urlencoded');
  }
  return new URLSearchParams(raw.toString('utf8'));
}
