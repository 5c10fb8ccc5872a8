/**
 * An operator can always unblock a group (issue 13): retry a run now, or stop it safely — through the `api`
 * function as Code Engine runs it (`POST /v1/runs/{id}/retry|stop`, operator role), against the Key Protect
 * emulator and the embedded store.
 *
 * - a run waiting until the year 9999 blocks every rotation (RUN_IN_PROGRESS); the operator's retry makes it due now
 *   and it completes; an auditor's retry is refused and changes nothing;
 * - a stop at promote (after a worker crashed there) is refused — the primary may hold the new material — and the
 *   run is untouched; a retry finishes it;
 * - a stop before anything was staged leaves the group as it was (healthy, no active run, schedule restarted);
 * - a stop with one duplicate staged (another region down): the primary keeps its version, the staged duplicate
 *   keeps the new one, the group is degraded with an explanation naming it, the escrow stays with the run, neither
 *   the tick's query nor a worker resumes the run, a second stop is refused; after the region is back, a retry
 *   rolls forward with the same material (the staged duplicate is not rotated again) and the group is healthy.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Group, KeyVersionId } from '../../src/core/index.js';
import type { RotationRun } from '../../src/rotation/index.js';
import { createGroupOn, driveToEnd, type FunctionStack, startFunctionStack } from './_lib/accessStack.js';
import { recordScenario } from './_lib/report.js';
import { storeDigest } from './_lib/secretsStore.js';

let s: FunctionStack;
const groups: Record<string, Group> = {};
let operator: string;
let auditor: string;

beforeAll(async () => {
  s = await startFunctionStack({ functionLogLevel: 'warn' });
  for (const id of ['unblock-wait', 'unblock-promote', 'unblock-idle', 'unblock-staged']) {
    groups[id] = await createGroupOn(s, id);
  }
  operator = await s.emu.iam.issueToken('operator');
  auditor = await s.emu.iam.issueToken('auditor');
  // Key Protect's 1 h rule is 1 s here; wait it out in real time (the API's service uses the wall clock)
  await new Promise((r) => setTimeout(r, 1_100));
}, 120_000);

afterAll(async () => {
  await s?.close();
});

interface Answer {
  status: number;
  body: Record<string, unknown> & { error?: { code?: string; message?: string } };
}

async function post(path: string, token: string, body: unknown = {}): Promise<Answer> {
  const res = await fetch(`${s.runner.url('api')}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Answer['body'] };
}

async function getRunView(runId: string, token: string): Promise<Answer> {
  const res = await fetch(`${s.runner.url('api')}/v1/runs/${runId}`, { headers: { authorization: `Bearer ${token}` } });
  return { status: res.status, body: (await res.json()) as Answer['body'] };
}

const currentVersion = async (g: Group, role: 'primary' | string) => {
  const m =
    role === 'primary' ? g.members.find((x) => x.role === 'primary')! : g.members.find((x) => x.region === role)!;
  return (await s.kp.listVersions(m))[0]?.id as KeyVersionId;
};

describe('operator: an operator can always unblock a group', () => {
  it('retry now, stop safely before promotion, never a stopped run resumed, roll forward from escrow', async () => {
    const violations: string[] = [];
    let checks = 0;
    const check = (ok: boolean, what: string) => {
      checks += 1;
      if (!ok) violations.push(what);
    };
    const svc = s.service();

    // ── 1. a run waiting until the year 9999 ──
    {
      const g = groups['unblock-wait']!;
      const { runId } = await svc.rotateNow(g.id, { trigger: { kind: 'operator', by: 'reliability' } });
      const cur = await s.stores.runs.get(runId);
      await s.stores.runs.save({ ...cur.value, nextAttemptAtMs: Date.UTC(9999, 11, 31) }, cur.rev);
      const blocked = await post(`/v1/groups/${g.id}/rotations`, operator, { force: true });
      check(blocked.status === 409 && blocked.body.error?.code === 'RUN_IN_PROGRESS', `wait: rotate ${blocked.status}`);
      const before = await storeDigest(s.couch);
      const byAuditor = await post(`/v1/runs/${runId}/retry`, auditor);
      check(byAuditor.status === 403, `wait: auditor retry answered ${byAuditor.status}`);
      check((await storeDigest(s.couch)) === before, 'wait: an auditor retry changed the store');
      const retried = await post(`/v1/runs/${runId}/retry`, operator, { reason: 'unblock the 9999 wait' });
      check(retried.status === 202 && retried.body.action === 'retried', `wait: retry answered ${retried.status}`);
      const due = await s.stores.runs.listUnfinished(Date.now() + 1_000, 100);
      check(
        due.some((r) => r.id === runId),
        'wait: after the retry the tick does not see the run as due',
      );
      const done = await driveToEnd(s, svc, runId);
      check(done.status === 'completed', `wait: retried run ended ${done.status}`);
      check((await s.stores.groups.get(g.id)).value.currentGeneration === 2, 'wait: generation 2 not recorded');
    }

    // ── 2. a stop at promote is refused (the primary may hold the material); a retry finishes the run ──
    {
      const g = groups['unblock-promote']!;
      const crashing = s.service({
        config: { groupLeaseTtlMs: 50 },
        afterPersist: (run) => {
          if (run.step === 'promote') throw new Error('worker crashed at promote');
        },
      });
      const { runId } = await crashing.rotateNow(g.id, { trigger: { kind: 'operator', by: 'reliability' } });
      await crashing.advanceRun(runId, { deadlineAtMs: s.clock.nowMs() + 60_000, holder: 'crashing' }).catch(() => {});
      await new Promise((r) => setTimeout(r, 150)); // the dead worker's lease expires
      const at = (await s.stores.runs.get(runId)).value as RotationRun;
      check(at.step === 'promote', `promote: the crash left the run at ${at.step}`);
      const before = await storeDigest(s.couch);
      const stop = await post(`/v1/runs/${runId}/stop`, operator);
      check(
        stop.status === 409 && stop.body.error?.code === 'RUN_STATE_INVALID',
        `promote: stop answered ${stop.status}`,
      );
      check(/retry/.test(stop.body.error?.message ?? ''), 'promote: the refusal does not say to retry');
      check((await storeDigest(s.couch)) === before, 'promote: a refused stop changed the store');
      const retried = await post(`/v1/runs/${runId}/retry`, operator);
      check(retried.status === 202, `promote: retry answered ${retried.status} ${JSON.stringify(retried.body)}`);
      const done = await driveToEnd(s, svc, runId);
      check(done.status === 'completed', `promote: retried run ended ${done.status}`);
    }

    // ── 3. a stop before anything was staged: the group is as before ──
    {
      const g = groups['unblock-idle']!;
      const primaryBefore = await currentVersion(g, 'primary');
      const { runId } = await svc.rotateNow(g.id, { trigger: { kind: 'operator', by: 'reliability' } });
      const stop = await post(`/v1/runs/${runId}/stop`, operator, { reason: 'change freeze' });
      const rec = stop.body.stop as { staged?: unknown[]; summary?: string } | undefined;
      check(stop.status === 200 && stop.body.status === 'stopped', `idle: stop answered ${stop.status}`);
      check(rec?.staged?.length === 0 && /change freeze/.test(rec.summary ?? ''), 'idle: stop record wrong');
      const after = (await s.stores.groups.get(g.id)).value;
      check(after.status === 'healthy' && after.activeRunId === undefined, `idle: group ${after.status}`);
      check((after.nextDueAtMs ?? 0) > Date.now() + 3_600_000, 'idle: the schedule would start a run at the next tick');
      check((await currentVersion(g, 'primary')) === primaryBefore, 'idle: the primary changed');
      check(
        !(await s.stores.groups.findDue(Date.now(), 100)).some((x) => x.id === g.id),
        'idle: the group is due right after the stop',
      );
      const next = await svc.rotateNow(g.id, { trigger: { kind: 'operator', by: 'reliability' } }).catch((e) => e);
      check(typeof next.runId === 'string', `idle: a new rotation cannot start after the stop: ${next.message}`);
      if (next.runId) check((await driveToEnd(s, svc, next.runId)).status === 'completed', 'idle: next run failed');
    }

    // ── 4. a stop with one duplicate staged, one region down ──
    {
      const g = groups['unblock-staged']!;
      const [, up, down] = s.regions as [string, string, string];
      const primaryBefore = await currentVersion(g, 'primary');
      const downBefore = await currentVersion(g, down);
      const { runId } = await svc.rotateNow(g.id, { trigger: { kind: 'operator', by: 'reliability' } });
      s.emu.kp.setFaults({ region: down }, { outage: '503' });
      await svc.advanceRun(runId, { deadlineAtMs: s.clock.nowMs() + 60_000, holder: 'worker-1' });
      const mid = (await s.stores.runs.get(runId)).value as RotationRun;
      const staged = mid.members.filter((m) => m.role === 'duplicate' && m.progress === 'staged');
      check(staged.length === 1 && staged[0]?.region === up, `staged: ${staged.length} staged before the stop`);

      const stop = await post(`/v1/runs/${runId}/stop`, operator, { reason: 'region down for days' });
      const rec = stop.body.stop as {
        staged: { region: string; versionId: string }[];
        notStaged: { region: string; role: string }[];
        escrowKept: boolean;
        fingerprint?: string;
        summary: string;
      };
      check(stop.status === 200 && stop.body.status === 'stopped', `staged: stop answered ${stop.status}`);
      check(rec?.staged.length === 1 && rec.staged[0]?.region === up, 'staged: the record does not name the duplicate');
      check(rec?.escrowKept === true && rec.fingerprint === mid.fingerprint, 'staged: the escrow is not kept');
      check(
        rec?.notStaged.some((m) => m.role === 'primary') && rec.notStaged.some((m) => m.region === down),
        'staged: the record does not name the members without the material',
      );
      // Key Protect: the primary was never promoted; the staged duplicate holds the run's version
      check((await currentVersion(g, 'primary')) === primaryBefore, 'staged: the primary was promoted');
      check((await currentVersion(g, up)) === rec?.staged[0]?.versionId, 'staged: the duplicate version differs');
      const grp = (await s.stores.groups.get(g.id)).value;
      check(grp.status === 'degraded' && (grp.statusReason ?? '').includes(up), `staged: group ${grp.status}`);
      check(grp.activeRunId === undefined, 'staged: the stopped run still holds the group');
      // the run: stopped, readable by auditors (without escrow), never picked up again
      const seen = await getRunView(runId, auditor);
      check(seen.status === 200 && seen.body.status === 'stopped', `staged: auditor read ${seen.status}`);
      check(seen.body.escrow === undefined && seen.body.stop !== undefined, 'staged: auditor view wrong');
      const farFuture = Date.now() + 400 * 86_400_000;
      check(
        !(await s.stores.runs.listUnfinished(farFuture, 500)).some((r) => r.id === runId),
        'staged: the tick would resume the stopped run',
      );
      s.emu.kp.setFaults({ region: down }, {});
      const before = await storeDigest(s.couch);
      const res = await svc.advanceRun(runId, { deadlineAtMs: s.clock.nowMs() + 60_000, holder: 'worker-2' });
      check(res.status === 'stopped', `staged: a worker advanced the stopped run: ${res.status}`);
      check((await storeDigest(s.couch)) === before, 'staged: a worker changed the stopped run');
      check((await currentVersion(g, down)) === downBefore, 'staged: the down region was rotated after the stop');
      const again = await post(`/v1/runs/${runId}/stop`, operator);
      check(
        again.status === 409 && again.body.error?.code === 'RUN_STATE_INVALID',
        `staged: second stop ${again.status}`,
      );

      // roll forward: the retry promotes with the same material; the staged duplicate is not rotated again
      const upVersionsBefore = (await s.kp.listVersions(g.members.find((m) => m.region === up)!)).length;
      const retried = await post(`/v1/runs/${runId}/retry`, operator);
      check(retried.status === 202 && retried.body.groupStatus === 'rotating', `staged: retry ${retried.status}`);
      const done = await driveToEnd(s, svc, runId);
      check(done.status === 'completed', `staged: the retried run ended ${done.status}`);
      const record = await s.stores.lineage.get(g.id, 2);
      check(record.fingerprint === rec?.fingerprint, 'staged: generation 2 does not carry the escrowed material');
      check(
        record.members.find((m) => m.region === up)?.keyVersionId === rec?.staged[0]?.versionId,
        'staged: the staged duplicate was rotated again',
      );
      check(
        (await s.kp.listVersions(g.members.find((m) => m.region === up)!)).length === upVersionsBefore,
        'staged: the staged duplicate got another version',
      );
      const healed = (await s.stores.groups.get(g.id)).value;
      check(healed.status === 'healthy' && healed.currentGeneration === 2, `staged: group ${healed.status} after`);
      check((await svc.verify(g.id)).ok, 'staged: verify fails after the roll forward');
    }

    const result = recordScenario({
      scenario: 'operator unblock: retry now, safe stop, roll forward',
      area: 'access',
      runs: checks,
      violations: violations.length,
      notes:
        'a run waiting until 9999 retried by the operator (auditor refused, store unchanged) and completed; stop at promote refused (store unchanged), retry finished it; stop before staging left the group healthy and not due; stop with one duplicate staged and a region down: primary not promoted, group degraded naming the duplicate, escrow kept, not in the tick query, a worker does nothing, second stop refused; retry rolled forward with the same material (no extra version on the staged duplicate), verify ok',
      examples: violations.slice(0, 8),
    });
    expect(result.violations, result.examples?.join('\n')).toBe(0);
  }, 180_000);
});
