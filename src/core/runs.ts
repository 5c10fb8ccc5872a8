/**
 * The fields every persisted run has (the store indexes them); the saga's own state (`src/rotation`) extends them.
 */
import type { GroupId, RunId } from './ids.js';

/** Run statuses that the scheduler resumes. */
export const RunStatus = {
  PENDING: 'pending',
  RUNNING: 'running',
  DEGRADED: 'degraded',
  COMPLETED: 'completed',
  FAILED: 'failed',
  DIVERGED: 'diverged',
  /** Stopped by an operator before promotion (`src/app/operatorRuns.ts`): terminal unless retried. */
  STOPPED: 'stopped',
} as const;
export type RunStatus = (typeof RunStatus)[keyof typeof RunStatus];
export const UNFINISHED_RUN_STATUSES: readonly RunStatus[] = ['pending', 'running', 'degraded'];

/** Fields every persisted run has (indexed). The saga's own state lives in the rest of the document. */
export interface RunRecordBase {
  id: RunId;
  groupId: GroupId;
  generation: number;
  kind: string;
  status: RunStatus;
  createdAtMs: number;
  updatedAtMs: number;
  /** Not before this time (backoff, 1 h rule). */
  nextAttemptAtMs?: number;
}
