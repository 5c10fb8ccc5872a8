/**
 * Use cases over ports: the rotation service (one engine behind every trigger), its config, and the ports the
 * adapters implement.
 */

export {
  createDrillService,
  DEFAULT_DRILL_CONFIG,
  type DrillConfig,
  type DrillDeps,
  type DrillService,
  drillDue,
  type SwitchoverPort,
} from './drill.js';
export { type OperatorRuns, type RunActionResult, runActions } from './operatorRuns.js';
export * from './ports.js';
export { createRotationService } from './rotationService.js';
export * from './service.js';
export { createJsonLogger, cryptoRandom, type LogLevel, systemClock } from './system.js';
