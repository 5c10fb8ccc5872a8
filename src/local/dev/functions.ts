/**
 * The three functions as the local runner serves them. Composition here mirrors `functions/*.ts` (config → adapters
 * → use cases → `createCeMain`) for the local stack, with the adapters the dev stack already built.
 */
import { createApi } from '../../api/index.js';
import { handleActivityEvents, parseActivityPayload } from '../../app/events.js';
import type { RotationService, Stores } from '../../app/index.js';
import type { CeParams, SharedSecret } from '../../codeengine/index.js';
import { createCeMain, staticTokenAuthenticator } from '../../codeengine/index.js';
import type { Clock, Logger, Random } from '../../core/index.js';
import { AppError, hasCode, jsonResponse } from '../../core/index.js';

export interface DevFunctionDeps {
  stores: Stores;
  service: RotationService;
  clock: Clock;
  random: Random;
  logger: Logger;
  api: {
    jwksUrl: string;
    issuer: string;
    iamTokenUrl: string;
    roles: Record<string, 'operator' | 'auditor'>;
    checkpointPublicKeys: Record<string, string>;
  };
  eventsTokens: SharedSecret[];
  /** IAM ids lockstep acts as (its own Key Protect calls). */
  ownIamIds: string[];
  /** Budget of one cron tick. */
  tickBudgetMs: number;
}

export type CeMainFn = (params: CeParams) => Promise<unknown>;

/** Builds `rotate` (cron), `events` (HTTP, token-authenticated) and `api` (HTTP, IAM bearer) mains. */
export function devFunctionMains(d: DevFunctionDeps): { rotate: CeMainFn; events: CeMainFn; api: CeMainFn } {
  const api = createApi({
    stores: d.stores,
    service: d.service,
    auth: { jwksUrl: d.api.jwksUrl, issuer: d.api.issuer, roles: d.api.roles, iamTokenUrl: d.api.iamTokenUrl },
    checkpointPublicKeys: d.api.checkpointPublicKeys,
    clock: d.clock,
    logger: d.logger.child({ function: 'api' }),
  });
  const apiMain = createCeMain({
    functionName: 'api',
    maxExecutionTimeMs: 60_000,
    clock: d.clock,
    random: d.random,
    logger: d.logger.child({ function: 'api' }),
    handler: (event) => api(event.request),
  });

  const eventsMain = createCeMain({
    functionName: 'events',
    maxExecutionTimeMs: 30_000,
    clock: d.clock,
    random: d.random,
    logger: d.logger.child({ function: 'events' }),
    auth: { authenticators: [staticTokenAuthenticator({ tokens: d.eventsTokens })] },
    handler: async (event) => {
      let body: unknown;
      try {
        body = JSON.parse((event.request.body ?? Buffer.alloc(0)).toString('utf8'));
      } catch {
        throw new AppError(
          'VALIDATION_FAILED',
          'events: the body must be JSON (a CADF event, a batch or an Event Notifications envelope)',
        );
      }
      const { source, events } = parseActivityPayload(body);
      const summary = await handleActivityEvents(
        {
          service: d.service,
          stores: d.stores,
          clock: d.clock,
          logger: d.logger.child({ function: 'events' }),
          ownIamIds: d.ownIamIds,
        },
        events,
        { source },
      );
      return jsonResponse(200, summary);
    },
  });

  let ticking = false;
  const rotateMain = createCeMain({
    functionName: 'rotate',
    maxExecutionTimeMs: d.tickBudgetMs,
    clock: d.clock,
    random: d.random,
    logger: d.logger.child({ function: 'rotate' }),
    handler: async (event) => {
      // one tick at a time in this container; the next ping continues what is left
      if (ticking) return jsonResponse(202, { skipped: 'a tick is already running' });
      ticking = true;
      try {
        return jsonResponse(200, await tick(d, event.kind === 'cron' ? `cron:${event.request.requestId}` : 'http'));
      } finally {
        ticking = false;
      }
    },
  });
  return { rotate: rotateMain, events: eventsMain, api: apiMain };
}

/** One scheduler tick: resume unfinished runs, then start due groups, within the tick budget. */
async function tick(d: DevFunctionDeps, by: string): Promise<Record<string, unknown>> {
  const started = d.clock.nowMs();
  const deadlineAtMs = started + d.tickBudgetMs - 5_000;
  const holder = `rotate-${d.random.uuid()}`;
  const resumed: string[] = [];
  const startedRuns: string[] = [];
  const skipped: Record<string, string> = {};
  for (const run of await d.stores.runs.listUnfinished(d.clock.nowMs(), 10)) {
    if (d.clock.nowMs() >= deadlineAtMs) break;
    try {
      await d.service.advanceRun(run.id, { deadlineAtMs, holder });
      resumed.push(run.id);
    } catch (err) {
      if (!hasCode(err, 'LEASE_HELD', 'RUN_IN_PROGRESS'))
        d.logger.warn('tick.resume_failed', { runId: run.id, error: err });
    }
  }
  for (const group of await d.stores.groups.findDue(d.clock.nowMs(), 10)) {
    if (d.clock.nowMs() >= deadlineAtMs) break;
    if (group.activeRunId) continue;
    try {
      const { runId } = await d.service.rotateNow(group.id, { trigger: { kind: 'schedule', by } });
      startedRuns.push(runId);
      await d.service.advanceRun(runId, { deadlineAtMs, holder });
    } catch (err) {
      if (hasCode(err, 'ROTATION_TOO_SOON', 'RUN_IN_PROGRESS', 'LEASE_HELD', 'MEMBER_NOT_ACTIVE')) {
        skipped[group.id] = (err as AppError).code;
      } else d.logger.warn('tick.start_failed', { groupId: group.id, error: err });
    }
  }
  return { resumed, started: startedRuns, skipped, tookMs: d.clock.nowMs() - started };
}
