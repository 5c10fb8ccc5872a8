/**
 * The `lockstep` command line: commander program, configuration precedence, groups-file validation, output.
 */
export { type ApiClient, createApiClient } from './apiClient.js';
export { runCli } from './cli.js';
export {
  type CliConfig,
  type ConfigFlags,
  DEFAULT_CONFIG_FILE,
  DEFAULT_DEV_FILE,
  ENV_VARS,
  type KeyProtectRegion,
  type ResolvedConfig,
  resolveConfig,
} from './config.js';
export type { CliContext, CliIo } from './context.js';
export { formatDuration, parseDuration } from './duration.js';
export { CliError, ExitCode, exitCodeFor } from './exitCodes.js';
export {
  formatIssues,
  type GroupSpec,
  type GroupsFileIssue,
  type GroupsFileResult,
  KEY_PROTECT_MIN_ROTATION_INTERVAL_MS,
  type MemberSpec,
  parseGroupsFile,
} from './groupsFile.js';
export { Output, renderTable } from './output.js';
export { buildProgram, type CommandHandlers } from './program.js';
