/**
 * The timeline page's routes. The page is rendered on the server; it authenticates with the same IAM tokens as
 * the API, kept in an HttpOnly, SameSite=Strict cookie scoped to `/ui` that `POST /ui/login` sets from a pasted
 * access token (or an API key exchanged at IAM, when `auth.iamTokenUrl` is configured). The page has no scripts.
 */
import type { Stores } from '../app/index.js';
import type { Clock, Group, GroupId, HttpRequest, HttpResponse, Logger } from '../core/index.js';
import { AppError, asGroupId } from '../core/index.js';
import { type ApiAuthConfig, type Authenticator, exchangeApiKey, type Principal, requirePermission } from './auth.js';
import { type ExportBody, exportPage } from './export.js';
import { toErrorResponse } from './httpStatus.js';
import { parseFormat } from './params.js';
import { buildProof, type TrustedCheckpointKeys } from './proof.js';
import { type GroupSummary, renderErrorPage, renderGroupPage, renderLoginPage, renderOverview } from './ui.js';

/** Name of the page's session cookie (holds the IAM access token). */
export const SESSION_COOKIE = 'lockstep_session';
const MAX_FORM_BYTES = 16 * 1024;
const OVERVIEW_GROUPS = 100;

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

export function createUiRoutes(deps: UiDeps): UiRoute[] {
  const base = deps.basePath;
  const secure = deps.publicBaseUrl?.startsWith('https:') ? '; Secure' : '';
  const html = (statusCode: number, body: string, headers: Record<string, string> = {}): HttpResponse => ({
    statusCode,
    headers: { ...HTML_HEADERS, ...headers },
    body,
  });
  const clearCookie = `${SESSION_COOKIE}=; Path=${base}/ui; HttpOnly; SameSite=Strict; Max-Age=0${secure}`;

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
          apiKeyLogin: deps.auth.iamTokenUrl !== undefined,
          message: hadSession ? `Your session ended: ${body.error.message}` : undefined,
        }),
        hadSession ? { 'set-cookie': clearCookie } : {},
      );
    }
    return html(
      statusCode,
      renderErrorPage({ basePath: base, principal, statusCode, code: body.error.code, message: body.error.message }),
    );
  };

  const session = async (req: HttpRequest): Promise<Principal> => {
    const token = parseCookies(req.headers.cookie)[SESSION_COOKIE];
    if (token === undefined || token === '') {
      throw new AppError('UNAUTHENTICATED', 'Log in with an IAM access token');
    }
    const principal = await deps.authenticator.authenticate(token);
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

  const sameOrigin = (req: HttpRequest) => {
    const origin = req.headers.origin;
    if (origin === undefined || origin === 'null') return origin === undefined;
    try {
      return new URL(origin).host === req.headers.host;
    } catch {
      return false;
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
        return html(
          200,
          renderGroupPage({
            basePath: base,
            principal,
            group,
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
          if (!sameOrigin(req)) throw new AppError('FORBIDDEN', 'The login form must be posted from this site');
          const form = readForm(req);
          let token = form.get('token')?.trim() ?? '';
          const apiKey = form.get('apikey')?.trim() ?? '';
          if (token === '' && apiKey !== '' && deps.auth.iamTokenUrl !== undefined) {
            token = await exchangeApiKey(deps.auth.iamTokenUrl, apiKey);
          }
          if (token === '') throw new AppError('UNAUTHENTICATED', 'Paste an IAM access token');
          if (/^bearer\s+/i.test(token)) token = token.replace(/^bearer\s+/i, '');
          const principal = await deps.authenticator.authenticate(token);
          requirePermission(principal, 'read');
          const nowSec = Math.floor(deps.clock.nowMs() / 1000);
          const maxAge = Math.max(1, Math.min(12 * 3600, (principal.expiresAtSec ?? nowSec + 3600) - nowSec));
          deps.logger.info('ui login', { requestId: req.requestId, iamId: principal.iamId, role: principal.role });
          return {
            statusCode: 303,
            headers: {
              location: `${base}/ui`,
              'set-cookie': `${SESSION_COOKIE}=${token}; Path=${base}/ui; HttpOnly; SameSite=Strict; Max-Age=${maxAge}${secure}`,
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
                apiKeyLogin: deps.auth.iamTokenUrl !== undefined,
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
      handle: async () => ({
        statusCode: 303,
        headers: { location: `${base}/ui`, 'set-cookie': clearCookie },
        body: '',
      }),
    },
  ];
}

function readForm(req: HttpRequest): URLSearchParams {
  const raw = req.body ?? Buffer.alloc(0);
  if (raw.length > MAX_FORM_BYTES) throw new AppError('PAYLOAD_TOO_LARGE', 'The form is larger than 16 KiB');
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (type !== 'application/x-www-form-urlencoded') {
    throw new AppError('UNSUPPORTED_MEDIA_TYPE', 'Post the login form as application/x-www-form-urlencoded');
  }
  return new URLSearchParams(raw.toString('utf8'));
}
