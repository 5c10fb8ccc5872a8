import type { RotationRun } from '../../rotation/index.js';

/** A run as the API shows it (without its escrow ciphertext). */
export type RunView = Omit<RotationRun, 'escrow'>;

const hhmmss = (ms: number) => new Date(ms).toISOString().slice(11, 19);
const short = (id: string | undefined) => (id ? id.slice(0, 8) : '-');

/**
 * Human lines for what changed in a run since the last look: new step transitions and members that were staged or
 * blocked. `memberSeen` remembers what was already printed per member slot.
 */
export function progressLines(run: RunView, seenTransitions: number, memberSeen: Map<string, string>): string[] {
  const lines: string[] = [];
  const kind = run.kind && run.kind !== 'rotation' ? ` [${run.kind}]` : '';
  for (const tr of (run.transitions ?? []).slice(seenTransitions)) {
    lines.push(
      `${hhmmss(tr.atMs)}  ${run.groupId} gen ${run.generation}${kind}  ${tr.from} → ${tr.to}${tr.note ? `  (${tr.note})` : ''}`,
    );
  }
  for (const m of run.members ?? []) {
    const state = `${m.progress}:${m.versionId ?? ''}:${m.lastError?.code ?? ''}`;
    if (memberSeen.get(m.slot) === state) continue;
    memberSeen.set(m.slot, state);
    if (m.progress === 'staged') {
      lines.push(
        `          ${m.role.padEnd(9)} ${m.region.padEnd(9)} holds gen ${run.generation} as version ${short(m.versionId)}${m.stagedVia === 'found' ? ' (found on re-check)' : ''}`,
      );
    } else if (m.progress === 'blocked') {
      lines.push(
        `          ${m.role.padEnd(9)} ${m.region.padEnd(9)} blocked: ${m.lastError?.code ?? ''} ${m.lastError?.message ?? ''}`.trimEnd(),
      );
    }
  }
  return lines;
}

/** Follows every run of the listed groups through `listRuns`, printing progress lines; returns a stop function. */
export function watchRuns(opts: {
  listRuns: () => Promise<RunView[]>;
  print: (line: string) => void;
  intervalMs?: number;
  onError?: (err: unknown) => void;
}): () => Promise<void> {
  const seen = new Map<string, number>();
  const members = new Map<string, Map<string, string>>();
  const finished = new Set<string>();
  let stopped = false;
  let current: Promise<void> = Promise.resolve();
  const poll = async () => {
    const runs = await opts.listRuns();
    for (const run of runs.sort((a, b) => a.createdAtMs - b.createdAtMs)) {
      if (finished.has(run.id)) continue;
      const m = members.get(run.id) ?? new Map<string, string>();
      members.set(run.id, m);
      for (const line of progressLines(run, seen.get(run.id) ?? 0, m)) opts.print(line);
      seen.set(run.id, run.transitions?.length ?? 0);
      if (['completed', 'failed', 'diverged', 'stopped'].includes(run.status)) {
        finished.add(run.id);
        opts.print(
          `${hhmmss(run.finishedAtMs ?? run.updatedAtMs)}  ${run.groupId} gen ${run.generation}${run.kind && run.kind !== 'rotation' ? ` [${run.kind}]` : ''}  ${run.status.toUpperCase()}${run.fingerprint ? `  fingerprint ${run.fingerprint}` : ''}${run.statusReason ? `  — ${run.statusReason}` : ''}`,
        );
      }
    }
  };
  const timer = setInterval(() => {
    if (stopped) return;
    current = current.then(poll).catch((err) => opts.onError?.(err));
  }, opts.intervalMs ?? 1000);
  // runs that were already finished when the watcher started are not replayed
  current = opts
    .listRuns()
    .then((runs) => {
      for (const r of runs) {
        if (['completed', 'failed', 'diverged', 'stopped'].includes(r.status)) finished.add(r.id);
      }
    })
    .catch((err) => opts.onError?.(err));
  return async () => {
    stopped = true;
    clearInterval(timer);
    await current;
  };
}
