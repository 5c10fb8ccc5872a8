import { auditVerify } from './commands/audit.js';
import { showConfig } from './commands/config.js';
import { emulator } from './commands/emulator.js';
import { groupApply, groupCreate, regionAdd } from './commands/groups.js';
import { plan, rotate, verify } from './commands/operator.js';
import { notAvailable } from './exitCodes.js';
import type { CommandHandlers } from './program.js';

const pending = (what: string, reason: string) => async (): Promise<number> => {
  throw notAvailable(what, reason);
};

/** The real command handlers. */
export const defaultHandlers: CommandHandlers = {
  dev: pending('lockstep dev', 'the local stack modules are still being wired'),
  emulator,
  groupCreate,
  groupApply,
  plan,
  rotate,
  verify,
  auditVerify,
  regionAdd,
  config: showConfig,
};
