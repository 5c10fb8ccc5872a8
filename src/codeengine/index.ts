export type { Authenticator, SharedSecret } from './auth.js';
export {
  authenticate,
  CRON_SECRET_FIELD,
  cronSecretId,
  cronSubscriptionData,
  DEFAULT_SIGNATURE_WINDOW_SECONDS,
  hmacAuthenticator,
  iamBearerAuthenticator,
  SIGNATURE_HEADER,
  signBody,
  staticTokenAuthenticator,
  TIMESTAMP_HEADER,
  TOKEN_HEADER,
} from './auth.js';
export type { CeContext, Principal } from './context.js';
export {
  createCeContext,
  DEFAULT_MAX_EXECUTION_TIME_MS,
  MAX_EXECUTION_TIME_LIMIT_MS,
  maxExecutionTimeMsFromEnv,
} from './context.js';
export type { CloudAuth, CommonConfig, Env, EventsAuthConfig } from './env.js';
export {
  EnvReader,
  KP_REGIONS,
  readApiConfig,
  readCommonConfig,
  readCronSecrets,
  readEventsAuthConfig,
  readOwnIamIds,
} from './env.js';
export type { CeHandler, CeMainOptions } from './main.js';
export { createCeMain, perContainer } from './main.js';
export type { RequestRules } from './middlewares.js';
export { authMiddleware, errorHandlerMiddleware, loggingMiddleware, validationMiddleware } from './middlewares.js';
export { createEventNotificationsNotifier, createWebhookNotifier, LOCKSTEP_EVENT_SOURCE } from './notifier.js';
export type { CeEvent, CeParams, CeResult, CronPing } from './params.js';
export {
  CE_PING_TYPE,
  canonicalHeaderName,
  decodeCeBody,
  fromCeParams,
  fromCeResult,
  isJsonMediaType,
  isTextMediaType,
  mediaTypeOf,
  toCeParams,
  toCeResult,
  toCronParams,
} from './params.js';
