import type { Context as LambdaContext } from 'aws-lambda';
import type { Clock, Logger } from '../core/index.js';
import { silentLogger } from '../core/index.js';

/** The function's limits when nothing is configured: Code Engine's default max execution time. */
export const DEFAULT_MAX_EXECUTION_TIME_MS = 60_000;
/** Code Engine's hard upper bound for a function's max execution time. */
export const MAX_EXECUTION_TIME_LIMIT_MS = 120_000;

/** Who made an authenticated request. */
export interface Principal {
  /** How it was authenticated. */
  method: 'hmac' | 'iam' | 'token' | 'cron' | 'none';
  /** A subject (IAM id) or the name of the shared secret. */
  subject: string;
}

/**
 * The per-invocation context handed to middy and the handler. Code Engine passes no context, so lockstep builds
 * one: the deadline comes from the function's configured max execution time, so `getRemainingTimeInMillis` lets
 * middy's early timeout fire before Code Engine aborts the call (status 299), and lets the scheduler stop claiming
 * work in time. The AWS-shaped fields exist only because middy's types demand them.
 */
export interface CeContext extends LambdaContext {
  requestId: string;
  correlationId: string;
  functionName: string;
  startedAtMs: number;
  /** Epoch ms at which Code Engine will abort this invocation. */
  deadlineAtMs: number;
  /** Request-scoped logger (bound to request and correlation ids by the logging middleware). */
  logger: Logger;
  principal?: Principal;
}

/** Builds a context whose deadline is `startedAtMs + maxExecutionTimeMs`. */
export function createCeContext(opts: {
  functionName: string;
  requestId: string;
  correlationId?: string;
  maxExecutionTimeMs: number;
  clock: Clock;
  logger?: Logger;
}): CeContext {
  const startedAtMs = opts.clock.nowMs();
  const maxMs = Math.min(Math.max(opts.maxExecutionTimeMs, 1), MAX_EXECUTION_TIME_LIMIT_MS);
  const deadlineAtMs = startedAtMs + maxMs;
  const unsupported = () => {
    throw new Error('callback-style completion is not supported on Code Engine');
  };
  return {
    requestId: opts.requestId,
    correlationId: opts.correlationId ?? opts.requestId,
    functionName: opts.functionName,
    startedAtMs,
    deadlineAtMs,
    logger: opts.logger ?? silentLogger,
    getRemainingTimeInMillis: () => Math.max(0, deadlineAtMs - opts.clock.nowMs()),
    awsRequestId: opts.requestId,
    functionVersion: '$CE',
    invokedFunctionArn: `ce:function:${opts.functionName}`,
    memoryLimitInMB: '0',
    logGroupName: '',
    logStreamName: '',
    callbackWaitsForEmptyEventLoop: false,
    done: unsupported,
    fail: unsupported,
    succeed: unsupported,
  };
}

/**
 * Reads the max execution time (seconds) the deployment put into the environment
 * (`LOCKSTEP_MAX_EXECUTION_SECONDS`, set by the serverless plugin from `maxExecutionTime`).
 */
export function maxExecutionTimeMsFromEnv(env: Record<string, string | undefined>): number {
  const raw = env.LOCKSTEP_MAX_EXECUTION_SECONDS;
  const seconds = raw ? Number(raw) : Number.NaN;
  return Number.isFinite(seconds) && seconds > 0
    ? Math.min(seconds * 1000, MAX_EXECUTION_TIME_LIMIT_MS)
    : DEFAULT_MAX_EXECUTION_TIME_MS;
}
