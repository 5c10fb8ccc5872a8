import middy from '@middy/core';
import { toErrorResponse } from '../core/httpStatus.js';
import type { Clock, HttpResponse, Logger, Random } from '../core/index.js';
import { AppError, isAppError, jsonResponse, silentLogger } from '../core/index.js';
import type { Authenticator, SharedSecret } from './auth.js';
import type { CeContext } from './context.js';
import { createCeContext } from './context.js';
import type { RequestRules } from './middlewares.js';
import { authMiddleware, errorHandlerMiddleware, loggingMiddleware, validationMiddleware } from './middlewares.js';
import type { CeEvent, CeParams, CeResult } from './params.js';
import { fromCeParams, toCeResult } from './params.js';

/** The business handler a function wraps: normalized event in, transport-neutral response out. */
export type CeHandler = (event: CeEvent, context: CeContext, opts: { signal: AbortSignal }) => Promise<HttpResponse>;

/** Options of {@link createCeMain}. */
export interface CeMainOptions {
  functionName: string;
  /** The function's configured max execution time. */
  maxExecutionTimeMs: number;
  /** How long before the deadline middy aborts the handler (its `timeoutEarlyInMillis`). Default 1500. */
  timeoutEarlyMs?: number;
  clock: Clock;
  random: Random;
  logger?: Logger;
  /**
   * Omit for functions that authenticate themselves (the API verifies IAM tokens per route). `cronSecrets`: set for
   * a function with a cron subscription; pings are accepted only with one of them in their data.
   */
  auth?: { authenticators: readonly Authenticator[]; cronSecrets?: readonly SharedSecret[] };
  rules?: RequestRules;
  handler: CeHandler;
}

/**
 * Builds a Code Engine `main(params)`: params → normalized event → middy (logging, errors, auth, validation) →
 * handler → `{statusCode, headers, body}`. Never throws: every failure becomes an error response.
 * @example
 * export const main = createCeMain({ functionName: 'events', maxExecutionTimeMs: 30_000, clock, random, handler });
 */
export function createCeMain(opts: CeMainOptions): (params: CeParams) => Promise<CeResult> {
  const logger = opts.logger ?? silentLogger;
  const handler = middy<CeEvent, HttpResponse, Error, CeContext>(
    (event: CeEvent, context: CeContext, mopts: { signal: AbortSignal }) =>
      opts.handler(event, context, mopts).catch((err: unknown) => {
        // A handler that honours the abort signal fails with its own error; report it as the deadline it is.
        if (mopts.signal.aborted && !isAppError(err)) {
          throw new AppError('DEADLINE_EXCEEDED', 'The function ran out of time; the work continues on the next call', {
            cause: err,
          });
        }
        throw err;
      }),
    { timeoutEarlyInMillis: opts.timeoutEarlyMs ?? 1500 },
  )
    .use(loggingMiddleware({ logger, clock: opts.clock }))
    .use(errorHandlerMiddleware());
  if (opts.auth) handler.use(authMiddleware({ ...opts.auth, clock: opts.clock }));
  if (opts.rules) handler.use(validationMiddleware(opts.rules));

  return async function main(params: CeParams): Promise<CeResult> {
    const fallbackId = opts.random.uuid();
    let event: CeEvent;
    try {
      event = fromCeParams(params ?? {}, fallbackId);
    } catch (err) {
      const { statusCode, body } = toErrorResponse(err, fallbackId);
      logger.warn('request.undecodable', { requestId: fallbackId, status: statusCode });
      return toCeResult(jsonResponse(statusCode, body, { 'x-request-id': fallbackId }));
    }
    const context = createCeContext({
      functionName: opts.functionName,
      requestId: event.request.requestId,
      maxExecutionTimeMs: opts.maxExecutionTimeMs,
      clock: opts.clock,
      logger,
    });
    const response = await handler(event, context);
    return toCeResult(response);
  };
}

/**
 * Memoises an async factory per container (Code Engine may reuse instances). A failed build is not cached, so a
 * fixed configuration is picked up on the next call.
 */
export function perContainer<T>(build: () => Promise<T>): () => Promise<T> {
  let pending: Promise<T> | undefined;
  return () => {
    if (!pending) {
      pending = build().catch((err: unknown) => {
        pending = undefined;
        throw err;
      });
    }
    return pending;
  };
}
