/**
 * The local dev stack behind `lockstep dev` / `npm start`: IAM, Key Protect emulator (3 regions), embedded store,
 * the functions on the local Code Engine runner with a cron ticker, a seeded demo group, and `.lockstep/dev.json`.
 */
export { progressLines, type RunView, watchRuns } from './progress.js';
export {
  DEMO_GROUP_ID,
  DEV_REGIONS,
  type DevJson,
  type DevStack,
  type DevStackOptions,
  startDevStack,
} from './stack.js';
export { type DevState, STATE_FILE } from './state.js';
