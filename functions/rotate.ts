/**
 * `rotate` (cron): every ping runs one scheduler tick within the invocation's deadline. Also callable over HTTP
 * (POST, IAM bearer token of an allowed identity) to run a tick now.
 */
import { runTick } from '../src/app/tick.js';
import type { CeParams, CeResult } from '../src/codeengine/index.js';
import { createCeMain, iamBearerAuthenticator, perContainer } from '../src/codeengine/index.js';
import { jsonResponse } from '../src/core/index.js';
import { buildCore, clock, functionBasics } from './shared.js';

const FN = 'rotate';

const deps = perContainer(() =>
  buildCore(FN, process.env, (r) => ({
    concurrency: r.int('LOCKSTEP_TICK_CONCURRENCY', 4, 1, 32),
    stopClaimingMarginMs: r.int('LOCKSTEP_TICK_MARGIN_MS', 20_000, 0, 110_000),
    requestBudgetPerInstance: r.int('LOCKSTEP_KP_BUDGET_PER_INSTANCE', 200, 1, 100_000),
    operatorIamIds: r.list('LOCKSTEP_TICK_IAM_IDS'),
  })),
);

const iamUrl = (process.env.IAM_URL ?? process.env.LOCKSTEP_IAM_URL ?? 'https://iam.cloud.ibm.com').replace(/\/$/, '');
// Only the listed identities may trigger a tick over HTTP; with none listed, only cron pings run it (an empty list
// must not mean "any IAM identity": the IAM key set signs tokens of every IBM Cloud account).
const tickIamIds = (process.env.LOCKSTEP_TICK_IAM_IDS ?? '').split(',').filter(Boolean);

export const main: (params: CeParams) => Promise<CeResult> = createCeMain({
  ...functionBasics(FN),
  auth: {
    allowCron: true,
    authenticators: tickIamIds.length
      ? [
          iamBearerAuthenticator({
            jwksUrl: `${iamUrl}/identity/keys`,
            issuer: `${iamUrl}/identity`,
            allowedIamIds: tickIamIds,
          }),
        ]
      : [],
  },
  rules: { methods: ['POST'] },
  handler: async (event, context) => {
    const d = await deps();
    const summary = await runTick(
      {
        service: d.service,
        stores: d.stores,
        drills: d.drills,
        clock,
        logger: context.logger,
        config: {
          concurrency: d.extra.concurrency,
          stopClaimingMarginMs: d.extra.stopClaimingMarginMs,
          requestBudgetPerInstance: d.extra.requestBudgetPerInstance,
        },
      },
      {
        deadlineAtMs: context.deadlineAtMs,
        holder: `${FN}-${context.requestId}`,
        triggerId: event.kind === 'cron' ? event.cron.id : context.requestId,
      },
    );
    return jsonResponse(200, summary);
  },
});
