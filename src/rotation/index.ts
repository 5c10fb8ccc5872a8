/**
 * Rotation saga (pure): the persisted run, the commands and outcomes, and the decider. No I/O, clock or randomness.
 */
export {
  applyOutcome,
  backoffMs,
  CATCH_UP_REASON,
  catchUpReason,
  type DeciderConfig,
  decide,
  duplicatesOf,
  isReplayRun,
  missingGenerations,
  type NewRunInput,
  newRun,
  normalizeStep,
  primaryOf,
  primaryPromoted,
  reopenRun,
  slotOf,
} from './decider.js';
export { memberStateProblem } from './memberState.js';
export {
  type Command,
  type CreateIntent,
  type Decision,
  type MemberCall,
  MemberProgress,
  type MemberReading,
  type Outcome,
  type RotationRun,
  type RunError,
  RunKind,
  type RunMember,
  type RunStop,
  type RunTransition,
  STEP_ORDER,
  Step,
} from './types.js';
