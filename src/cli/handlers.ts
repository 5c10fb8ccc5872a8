import type { CommandHandlers } from './program.js';

/**
 * The real command handlers. Each loads its module on first use, so a command only pays for what it needs: `--help`,
 * `status` and `history` never load the IBM SDKs, the rotation service or the dev stack (express, PouchDB).
 */
export const defaultHandlers: CommandHandlers = {
  dev: async (...a) => (await import('./commands/dev.js')).dev(...a),
  emulator: async (...a) => (await import('./commands/emulator.js')).emulator(...a),
  groupCreate: async (...a) => (await import('./commands/groups.js')).groupCreate(...a),
  groupApply: async (...a) => (await import('./commands/groups.js')).groupApply(...a),
  plan: async (...a) => (await import('./commands/operator.js')).plan(...a),
  rotate: async (...a) => (await import('./commands/operator.js')).rotate(...a),
  verify: async (...a) => (await import('./commands/operator.js')).verify(...a),
  auditVerify: async (...a) => (await import('./commands/audit.js')).auditVerify(...a),
  regionAdd: async (...a) => (await import('./commands/groups.js')).regionAdd(...a),
  config: async (...a) => (await import('./commands/config.js')).showConfig(...a),
  check: async (...a) => (await import('./commands/check.js')).check(...a),
};
