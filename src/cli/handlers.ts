import { auditVerify } from './commands/audit.js';
import { check } from './commands/check.js';
import { showConfig } from './commands/config.js';
import { dev } from './commands/dev.js';
import { emulator } from './commands/emulator.js';
import { groupApply, groupCreate, regionAdd } from './commands/groups.js';
import { plan, rotate, verify } from './commands/operator.js';
import type { CommandHandlers } from './program.js';

/** The real command handlers. */
export const defaultHandlers: CommandHandlers = {
  dev,
  emulator,
  groupCreate,
  groupApply,
  plan,
  rotate,
  verify,
  auditVerify,
  regionAdd,
  config: showConfig,
  check,
};
