/**
 * middy 6 middlewares shared by the three functions. Event = `CeEvent`, response = `HttpResponse`,
 * context = `CeContext`. Order of use: logging → errors → auth → validation (onError runs in reverse).
 */
import type { MiddlewareObj, Request } from '@middy/core';
import { toErrorResponse } from '../core/httpStatus.js';
import type { Clock, HttpResponse, Logger } from '../core/index.js';
import { AppError, isAppError, jsonResponse } from '../core/index.js';
import type { Authenticator, SharedSecret } from './auth.js';
import { authenticate, cronSecretId, UNAUTHENTICATED_MESSAGE } from './auth.js';
import type { CeContext } from './context.js';
import type { CeEvent } from './params.js';
import { isJsonMediaType, mediaTypeOf } from './params.js';

type CeMiddleware = MiddlewareObj<CeEvent, HttpResponse, Error, CeContext>;
type CeRequest = Request<CeEvent, HttpResponse, Error, CeContext>;

const CORRELATION_HEADERS = ['x-correlation-id', 'correlation-id', 'x-request-id'] as const;

/**
 * Structured logging: binds a request logger (request id, correlation id, function) into the context and logs one
 * line per request start and end. Never logs headers, bodies or params; the logger redacts anything secret-looking.
 */
export function loggingMiddleware(opts: { logger: Logger; clock: Clock }): CeMiddleware {
  const end = (request: CeRequest) => {
    const status = request.response?.statusCode ?? 500;
    const durationMs = opts.clock.nowMs() - request.context.startedAtMs;
    const fields = { status, durationMs };
    if (status >= 500) request.context.logger.error('request.failed', fields);
    else request.context.logger.info('request.end', fields);
  };
  return {
    name: 'lockstepLogging',
    before: (request) => {
      const { event, context } = request;
      const fromHeader = CORRELATION_HEADERS.map((h) => event.request.headers[h]).find(
        (v) => v && /^[A-Za-z0-9._:-]{1,128}$/.test(v),
      );
      context.correlationId = fromHeader ?? context.requestId;
      context.logger = opts.logger.child({
        requestId: context.requestId,
        correlationId: context.correlationId,
        function: context.functionName,
      });
      context.logger.info('request.start', {
        kind: event.kind,
        method: event.request.method,
        path: event.request.path,
        bodyBytes: event.request.body?.length ?? 0,
        remainingMs: context.getRemainingTimeInMillis(),
      });
    },
    after: end,
    onError: end,
  };
}

/**
 * The one error handler: any thrown value becomes a JSON error response through the single ErrorCode → HTTP
 * table. 5xx bodies are generic and carry the request id; the cause is logged once, here, with redaction.
 * middy's early-timeout `TimeoutError` becomes DEADLINE_EXCEEDED.
 */
export function errorHandlerMiddleware(): CeMiddleware {
  return {
    name: 'lockstepErrors',
    onError: (request) => {
      if (request.response) return;
      const raw = request.error;
      const err =
        raw && raw.name === 'TimeoutError' && !isAppError(raw)
          ? new AppError('DEADLINE_EXCEEDED', 'The function ran out of time; the work continues on the next call', {
              cause: raw,
            })
          : raw;
      const { statusCode, body } = toErrorResponse(err, request.context.requestId);
      const log = request.context.logger;
      const fields = {
        code: body.error.code,
        status: statusCode,
        error: isAppError(err) ? err.message : err instanceof Error ? `${err.name}: ${err.message}` : String(err),
        ...(isAppError(err) && Object.keys(err.details).length ? { details: err.details } : {}),
      };
      if (statusCode >= 500) log.error('request.error', fields);
      else log.warn('request.rejected', fields);
      request.response = jsonResponse(statusCode, body, { 'x-request-id': request.context.requestId });
    },
  };
}

/**
 * Authentication: the request must satisfy one of the authenticators, else 401. A cron ping (`Ce-Type:
 * dev.knative.sources.ping`, a header anyone can send) passes only when its data carries one of `cronSecrets`
 * (see {@link cronSecretId}); a ping without it is refused with the same 401 as any other unauthenticated request,
 * before the handler runs, so it does nothing and learns nothing.
 */
export function authMiddleware(opts: {
  authenticators: readonly Authenticator[];
  clock: Clock;
  /** Secrets a cron subscription's data may carry (empty: every ping is refused). Absent: pings need `authenticators`. */
  cronSecrets?: readonly SharedSecret[];
}): CeMiddleware {
  return {
    name: 'lockstepAuth',
    before: async (request) => {
      const { event } = request;
      if (event.kind === 'cron' && opts.cronSecrets) {
        const id = cronSecretId(event.cron.data, opts.cronSecrets);
        if (!id) {
          request.context.logger.warn('cron.refused', {
            reason: opts.cronSecrets.length ? 'no valid cron secret in the data' : 'LOCKSTEP_CRON_SECRETS is not set',
          });
          throw new AppError('UNAUTHENTICATED', UNAUTHENTICATED_MESSAGE);
        }
        request.context.principal = { method: 'cron', subject: `cron-secret:${id}` };
      } else {
        request.context.principal = await authenticate(opts.authenticators, event.request, opts.clock.nowMs());
      }
      request.context.logger = request.context.logger.child({ principal: request.context.principal.subject });
    },
  };
}

/** What the validation middleware checks before the handler runs. */
export interface RequestRules {
  /** Allowed methods (upper case). */
  methods?: readonly string[];
  /** Require a JSON body (Content-Type application/json or +json). */
  requireJson?: boolean;
  /** Largest accepted body. Default 1 MB. */
  maxBodyBytes?: number;
  /** Extra check; throw an AppError VALIDATION_FAILED naming the field to fix. */
  validate?: (event: CeEvent) => void;
}

/**
 * Input validation with clear 4xx answers: method (405), body size (413), media type (415), JSON syntax and the
 * custom check (400).
 */
export function validationMiddleware(rules: RequestRules): CeMiddleware {
  const maxBodyBytes = rules.maxBodyBytes ?? 1024 * 1024;
  return {
    name: 'lockstepValidation',
    before: (request) => {
      const { event } = request;
      const req = event.request;
      if (rules.methods && !rules.methods.includes(req.method)) {
        throw new AppError('METHOD_NOT_ALLOWED', `Use ${rules.methods.join(' or ')} for this function`, {
          details: { method: req.method, allowed: [...rules.methods] },
        });
      }
      const size = req.body?.length ?? 0;
      if (size > maxBodyBytes) {
        throw new AppError('PAYLOAD_TOO_LARGE', `Body is ${size} bytes; the limit is ${maxBodyBytes}`, {
          details: { bytes: size, limit: maxBodyBytes },
        });
      }
      if (rules.requireJson) {
        const mediaType = mediaTypeOf(req.headers['content-type']);
        if (!isJsonMediaType(mediaType)) {
          throw new AppError('UNSUPPORTED_MEDIA_TYPE', 'Send the body as application/json', {
            details: { contentType: mediaType || 'none' },
          });
        }
        if (size === 0) throw new AppError('VALIDATION_FAILED', 'The request body is empty; send a JSON document');
        try {
          JSON.parse(req.body!.toString('utf8'));
        } catch (err) {
          throw new AppError('VALIDATION_FAILED', 'The request body is not valid JSON', {
            details: { reason: err instanceof Error ? err.message.slice(0, 120) : 'parse error' },
          });
        }
      }
      rules.validate?.(event);
    },
  };
}
