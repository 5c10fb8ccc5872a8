import { AppError } from '../core/index.js';
import type { RotationService, RotationServiceDeps } from './service.js';

/**
 * Builds the rotation service over the ports.
 * @example
 * const svc = createRotationService({ kp, stores, clock: systemClock, random: cryptoRandom, logger });
 * const { runId } = await svc.rotateNow('payments', { trigger: { kind: 'operator', by: 'alice' } });
 * await svc.advanceRun(runId, { deadlineAtMs: Date.now() + 60_000, holder: 'cli' });
 */
export function createRotationService(_deps: RotationServiceDeps): RotationService {
  const notYet = (): never => {
    throw new AppError('INTERNAL', 'rotation service: not implemented yet');
  };
  return {
    createGroup: notYet,
    adoptGroup: notYet,
    plan: notYet,
    rotateNow: notYet,
    advanceRun: notYet,
    resume: notYet,
    verify: notYet,
    addRegion: notYet,
    catchUp: notYet,
    getRun: notYet,
    attachEvidence: notYet,
    markForeignChange: notYet,
    findGroupByMember: notYet,
  };
}
