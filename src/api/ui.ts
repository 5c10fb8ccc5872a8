/**
 * Server-rendered HTML of the timeline page. Pure functions from data to HTML strings: no I/O, no scripts (the page
 * is served with a CSP that forbids them); every interpolated value goes through {@link esc}.
 */
import type { Checkpoint, Group, LineageRecord } from '../core/index.js';
import { parseKeyCrn } from '../core/index.js';
import type { ChainBreak, ChainReport } from '../lineage/index.js';
import type { Principal } from './auth.js';
import { PROOF_LIST_LIMIT } from './proof.js';

/** HTML-escapes text for element content and quoted attribute values. */
export function esc(value: unknown): string {
  return String(value ?? '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/** `2026-11-29 03:24:49Z` */
export function fmtTime(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return '—';
  return new Date(ms)
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d{3}Z$/, 'Z');
}

const short = (h: string, n = 12) => (h.length > n ? `${h.slice(0, n)}…` : h);

function regionOf(crn: string): string {
  try {
    return parseKeyCrn(crn).region;
  } catch {
    return crn;
  }
}

const STYLE = `
:root{--ok:#1a7f37;--warn:#9a6700;--bad:#cf222e;--muted:#57606a;--line:#d0d7de;--bg:#f6f8fa;--sup:#8250df}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1f2328;background:#fff}
header{display:flex;align-items:center;gap:16px;padding:10px 24px;background:#0f1b2d;color:#fff}
header a{color:#fff;text-decoration:none;font-weight:600}header .who{margin-left:auto;font-size:13px;opacity:.9}
header form{margin:0}td form{display:inline-flex;gap:4px;align-items:center;margin:2px 0}header button{background:transparent;color:#fff;border:1px solid #fff6;border-radius:4px;padding:3px 10px;cursor:pointer}
main{max-width:1200px;margin:0 auto;padding:20px 24px 60px}
h1{font-size:22px;margin:4px 0 2px}h2{font-size:17px;margin:26px 0 10px}h3{font-size:15px;margin:0}
.muted{color:var(--muted)}.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12.5px}
.badge{display:inline-block;padding:2px 9px;border-radius:12px;font-size:12px;font-weight:600;color:#fff;vertical-align:middle}
.s-complete,.s-healthy,.s-valid,.s-ok{background:var(--ok)}.s-degraded,.s-rotating,.s-unsigned{background:var(--warn)}
.s-stopped{background:var(--muted)}.s-pending,.s-running{background:var(--warn)}
.s-diverged,.s-failed,.s-drill-failed,.s-broken,.s-bad-signature,.s-unknown-key,.s-head-mismatch,.s-beyond-chain,.s-wrong-group{background:var(--bad)}
.s-superseded{background:var(--sup)}.s-none{background:var(--muted)}
.panel{border:1px solid var(--line);border-radius:8px;padding:14px 16px;background:var(--bg);margin:12px 0}
.integrity{display:grid;grid-template-columns:repeat(auto-fit,minmax(260px,1fr));gap:12px}
.integrity .panel{margin:0;background:#fff}
.exports a{margin-right:14px}
table{border-collapse:collapse;width:100%;margin:6px 0}th,td{text-align:left;padding:5px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:12px;color:var(--muted);font-weight:600}
.axis{position:relative;height:48px;margin:10px 8px 4px;border-bottom:2px solid #8c959f}
.legend{font-size:12px;color:var(--muted)}.legend .badge{margin:0 4px 0 10px}
.axis .tick{position:absolute;bottom:-22px;font-size:11px;color:var(--muted);transform:translateX(-50%);white-space:nowrap}
.axis .tick.first{transform:none}.axis .tick.last{transform:translateX(-100%)}
.marker{position:absolute;bottom:-9px;transform:translateX(-50%);text-align:center;text-decoration:none;color:#1f2328}
.marker .dot{display:block;width:16px;height:16px;border-radius:50%;border:2px solid #fff;box-shadow:0 0 0 1px #8c959f;margin:0 auto}
.marker.broken .dot{box-shadow:0 0 0 3px var(--bad)}.marker.broken .lbl{color:var(--bad)}
.marker .lbl{display:block;font-size:11px;font-weight:600;margin-bottom:3px}
.gen{border:1px solid var(--line);border-radius:8px;margin:14px 0;overflow:hidden}
.gen.broken{border-color:var(--bad);box-shadow:0 0 0 1px var(--bad)}
.gen .head{display:flex;flex-wrap:wrap;gap:10px 18px;align-items:center;padding:10px 14px;background:var(--bg);border-bottom:1px solid var(--line)}
.gen .body{padding:8px 14px 12px}.alert{color:var(--bad);font-weight:600;margin:6px 0}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:14px}
.card{border:1px solid var(--line);border-radius:8px;padding:12px 14px}.card h3 a{text-decoration:none}
.mini{position:relative;height:18px;margin:10px 4px;border-bottom:1px solid #8c959f}
.mini span{position:absolute;bottom:-5px;width:10px;height:10px;border-radius:50%;transform:translateX(-50%)}
form.login{max-width:560px}textarea,input[type=password]{width:100%;font:12px ui-monospace,monospace;padding:8px;border:1px solid var(--line);border-radius:6px}
button.primary{margin-top:10px;background:#0969da;color:#fff;border:0;border-radius:6px;padding:7px 16px;font-weight:600;cursor:pointer}
`;

function layout(opts: { title: string; basePath: string; principal?: Principal; body: string }): string {
  const who = opts.principal
    ? `<span class="who">${esc(opts.principal.iamId)} · <b data-testid="role">${esc(opts.principal.role)}</b></span>
<form method="post" action="${esc(opts.basePath)}/ui/logout"><button type="submit">Log out</button></form>`
    : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${esc(opts.title)} · lockstep</title><style>${STYLE}</style></head>
<body><header><a href="${esc(opts.basePath)}/ui">lockstep · version history</a>${who}</header>
<main>${opts.body}</main></body></html>`;
}

/** The login form: an IAM access token (or, when configured, an API key exchanged at IAM). */
export function renderLoginPage(opts: { basePath: string; message?: string; apiKeyLogin: boolean }): string {
  const apiKey = opts.apiKeyLogin
    ? `<p class="muted">…or an IAM API key (exchanged for a token at IAM; the key is not kept):</p>
<input type="password" name="apikey" autocomplete="off" aria-label="IAM API key">`
    : '';
  return layout({
    title: 'Log in',
    basePath: opts.basePath,
    body: `<h1>Log in</h1>
<p class="muted">The timeline shows lockstep's audit records. Paste an IAM access token of an identity with the
auditor or operator role (<span class="mono">ibmcloud iam oauth-tokens</span>, or the dev stack's
<span class="mono">lockstep dev</span> auditor). The page keeps it in an HttpOnly cookie for this path until it expires.</p>
${opts.message ? `<p class="alert" role="alert" data-testid="login-error">${esc(opts.message)}</p>` : ''}
<form class="login" method="post" action="${esc(opts.basePath)}/ui/login">
<label for="token">IAM access token</label>
<textarea id="token" name="token" rows="6" autocomplete="off" spellcheck="false" placeholder="eyJ…"></textarea>
${apiKey}
<button class="primary" type="submit">Open the timeline</button></form>`,
  });
}

/** An error page with the code and message from the error table. */
export function renderErrorPage(opts: {
  basePath: string;
  principal?: Principal;
  statusCode: number;
  code: string;
  message: string;
}): string {
  return layout({
    title: `Error ${opts.statusCode}`,
    basePath: opts.basePath,
    principal: opts.principal,
    body: `<h1>${esc(opts.statusCode)} · ${esc(opts.code)}</h1><p data-testid="error-message">${esc(opts.message)}</p>
<p><a href="${esc(opts.basePath)}/ui">Back to all groups</a></p>`,
  });
}

/** One group as the overview shows it. */
export interface GroupSummary {
  group: Group;
  records: LineageRecord[];
  report: ChainReport;
}

function chainBadge(report: ChainReport): string {
  return report.ok
    ? `<span class="badge s-ok" data-testid="chain-status">chain ok</span>`
    : `<span class="badge s-broken" data-testid="chain-status">chain broken</span>`;
}

function checkpointBadge(report: ChainReport, checkpoint: Checkpoint | null): string {
  if (!checkpoint) return `<span class="badge s-none" data-testid="checkpoint-status">no checkpoint</span>`;
  const check = report.checkpoints.find(
    (c) => c.generation === checkpoint.generation && c.signedAtMs === checkpoint.signedAtMs,
  );
  const status = check?.status ?? 'unknown-key';
  return `<span class="badge s-${esc(status)}" data-testid="checkpoint-status">checkpoint ${esc(status)}</span>`;
}

function exportLinks(basePath: string, groupId?: string): string {
  const q = groupId ? `&amp;groupId=${encodeURIComponent(groupId)}` : '';
  return `<span class="exports">Export: <a data-testid="export-csv" href="${esc(basePath)}/ui/export?format=csv${q}">CSV</a>
<a data-testid="export-jsonl" href="${esc(basePath)}/ui/export?format=jsonl${q}">JSON lines</a></span>`;
}

function miniAxis(records: LineageRecord[]): string {
  if (!records.length) return '<p class="muted">No generations recorded yet.</p>';
  const times = records.map((r) => r.finishedAtMs);
  const min = Math.min(...times);
  const span = Math.max(...times) - min || 1;
  const dots = records
    .map((r) => {
      const x = records.length === 1 ? 50 : 2 + (96 * (r.finishedAtMs - min)) / span;
      return `<span class="s-${esc(r.status)}" style="left:${x.toFixed(2)}%" title="generation ${esc(r.generation)} · ${esc(r.status)} · ${esc(fmtTime(r.finishedAtMs))}"></span>`;
    })
    .join('');
  return `<div class="mini" aria-hidden="true">${dots}</div>`;
}

/** `/ui`: every group with its status, chain badge and a small time axis. */
export function renderOverview(opts: {
  basePath: string;
  principal: Principal;
  groups: GroupSummary[];
  more: boolean;
}): string {
  const cards = opts.groups
    .map(({ group, records, report }) => {
      const href = `${opts.basePath}/ui/groups/${encodeURIComponent(group.id)}`;
      return `<section class="card" data-testid="group-card" data-group="${esc(group.id)}">
<h3><a href="${esc(href)}">${esc(group.name)}</a> <span class="muted mono">${esc(group.id)}</span></h3>
<p><span class="badge s-${esc(group.status)}">${esc(group.status)}</span> ${chainBadge(report)}
· generation <b>${esc(group.currentGeneration)}</b> · ${esc(group.members.length)} members
· last rotated ${esc(fmtTime(group.lastRotatedAtMs))}</p>
${miniAxis(records)}
<p>${exportLinks(opts.basePath, group.id)}</p></section>`;
    })
    .join('\n');
  return layout({
    title: 'Groups',
    basePath: opts.basePath,
    principal: opts.principal,
    body: `<h1>Key groups</h1>
<p class="muted">Each group keeps one primary and its duplicates on the same material. Open a group for its
generations, the Key Protect version of every member, the canary evidence and the chain proof.</p>
<p>${exportLinks(opts.basePath)}</p>
${cards ? `<div class="cards">${cards}</div>` : '<p data-testid="no-groups">No groups yet.</p>'}
${opts.more ? '<p class="muted">Only the first 100 groups are shown; use the API for the rest.</p>' : ''}`,
  });
}

function axis(records: LineageRecord[], basePath: string, groupId: string, broken: Set<number>): string {
  if (!records.length) return '<p class="muted" data-testid="no-generations">No generations recorded yet.</p>';
  const times = records.map((r) => r.finishedAtMs);
  const min = Math.min(...times);
  const max = Math.max(...times);
  const span = max - min || 1;
  const pos = (t: number) => (records.length === 1 ? 50 : 3 + (94 * (t - min)) / span);
  const markers = records
    .map(
      (r) =>
        `<a class="marker${broken.has(r.generation) ? ' broken' : ''}" href="#g${esc(r.generation)}" style="left:${pos(r.finishedAtMs).toFixed(2)}%" title="generation ${esc(r.generation)} · ${esc(r.status)} · ${esc(fmtTime(r.finishedAtMs))}" data-testid="axis-marker"><span class="lbl">${esc(r.generation)}</span><span class="dot s-${esc(r.status)}"></span></a>`,
    )
    .join('');
  const ticks =
    records.length === 1
      ? `<span class="tick" style="left:50%">${esc(fmtTime(min))}</span>`
      : `<span class="tick first" style="left:0">${esc(fmtTime(min))}</span><span class="tick last" style="left:100%">${esc(fmtTime(max))}</span>`;
  return `<div class="axis" role="img" aria-label="Generations of ${esc(groupId)} on a time axis" data-base="${esc(basePath)}">${markers}${ticks}</div><div style="height:22px"></div>`;
}

function generationCard(r: LineageRecord, breaks: ChainBreak[], effectiveUntilMs: number | undefined): string {
  const members = r.members
    .map(
      (m) => `<tr data-testid="member-row"><td>${esc(m.role)}</td><td>${esc(m.region)}</td>
<td class="mono" data-testid="key-version">${esc(m.keyVersionId)}</td><td class="mono" title="${esc(m.crn)}">${esc(short(m.keyId, 13))}</td>
<td>${esc(fmtTime(m.rotatedAtMs))}</td>
<td>${m.evidence.length ? m.evidence.map((e) => `<span class="mono" title="${esc(e.action)} by ${esc(e.initiator)} at ${esc(fmtTime(e.eventTimeMs))}">${esc(e.action)} · ${esc(e.outcome)} · ${esc(short(e.eventId, 14))}</span>`).join('<br>') : '<span class="muted">none yet</span>'}</td></tr>`,
    )
    .join('');
  const canaries = r.verification.length
    ? r.verification
        .map(
          (c) => `<tr><td>${esc(regionOf(c.wrappedAt))}</td><td>${esc(c.unwrappedAt.map(regionOf).join(', '))}</td>
<td><span class="badge s-${c.ok ? 'ok' : 'broken'}">${c.ok ? 'match' : 'MISMATCH'}</span></td><td>${esc(fmtTime(c.atMs))}</td>
<td class="mono" title="${esc(c.plaintextSha256)}">${esc(short(c.plaintextSha256))}</td></tr>`,
        )
        .join('')
    : '';
  const alerts = breaks.map((b) => `<p class="alert" data-testid="chain-break">${esc(b.kind)}: ${esc(b.message)}</p>`);
  return `<section class="gen${breaks.length ? ' broken' : ''}" id="g${esc(r.generation)}" data-testid="generation" data-generation="${esc(r.generation)}" data-status="${esc(r.status)}">
<div class="head"><h3>Generation ${esc(r.generation)}</h3>
<span class="badge s-${esc(r.status)}" data-testid="generation-status">${esc(r.status)}</span>
<span>fingerprint <span class="mono" data-testid="fingerprint">${esc(r.fingerprint)}</span></span>
<span data-testid="in-effect">in effect ${esc(fmtTime(r.finishedAtMs))} → ${effectiveUntilMs === undefined ? '<b>now (current)</b>' : esc(fmtTime(effectiveUntilMs))}</span>
<span class="muted">run ${esc(fmtTime(r.startedAtMs))} → ${esc(fmtTime(r.finishedAtMs))}</span>
<span class="muted">${esc(r.trigger.kind)} by <span class="mono">${esc(r.trigger.by)}</span>${r.trigger.reason ? ` — “${esc(r.trigger.reason)}”` : ''}</span></div>
<div class="body">${alerts.join('')}
<table><thead><tr><th>role</th><th>region</th><th>Key Protect version id</th><th>key</th><th>rotated</th><th>Activity Tracker evidence</th></tr></thead><tbody>${members}</tbody></table>
${canaries ? `<table><thead><tr><th>canary wrapped at</th><th>unwrapped at</th><th>result</th><th>when</th><th>plaintext SHA-256</th></tr></thead><tbody>${canaries}</tbody></table>` : '<p class="muted">No canary evidence recorded.</p>'}
${r.notes?.length ? `<p>${r.notes.map((n) => esc(n)).join('<br>')}</p>` : ''}
<p class="muted mono">run ${esc(r.runId)} · prevHash <span title="${esc(r.prevHash)}">${esc(short(r.prevHash))}</span> · hash <span title="${esc(r.hash)}">${esc(short(r.hash))}</span></p>
</div></section>`;
}

/** `/ui/groups/{id}`: integrity at the top, the time axis, then every generation (newest first). */
/** A run as the group page lists it, with the operator actions it allows. */
export interface RunRow {
  id: string;
  kind: string;
  generation: number;
  status: string;
  step: string;
  statusReason?: string;
  updatedAtMs: number;
  canRetry: boolean;
  canStop: boolean;
}

/** Recent runs; operators get a retry and a stop form per run where the run allows them (no scripts: plain forms). */
function runsSection(basePath: string, principal: Principal, runs: RunRow[]): string {
  if (!runs.length) return '';
  const operator = principal.role === 'operator';
  const actions = (r: RunRow) =>
    !operator
      ? ''
      : `${
          r.canRetry
            ? `<form method="post" action="${esc(basePath)}/ui/runs/${esc(r.id)}/retry" data-testid="retry-form">
<input type="text" name="reason" maxlength="500" placeholder="reason (optional)" aria-label="reason">
<button type="submit">Retry now</button></form>`
            : ''
        }${
          r.canStop
            ? `<form method="post" action="${esc(basePath)}/ui/runs/${esc(r.id)}/stop" data-testid="stop-form">
<input type="text" name="reason" maxlength="500" placeholder="reason" aria-label="reason">
<label><input type="checkbox" name="confirm" value="yes" required> stop before promotion</label>
<button type="submit">Stop</button></form>`
            : ''
        }`;
  const rows = runs
    .map(
      (r) =>
        `<tr data-testid="run" data-run="${esc(r.id)}"><td class="mono">${esc(r.id)}</td><td>${esc(r.kind)}</td><td>${esc(r.generation)}</td>
<td><span class="badge s-${esc(r.status)}" data-testid="run-status">${esc(r.status)}</span> ${esc(r.step)}</td>
<td>${esc(fmtTime(r.updatedAtMs))}</td><td class="muted">${esc(r.statusReason ?? '')}</td>${operator ? `<td>${actions(r)}</td>` : ''}</tr>`,
    )
    .join('');
  return `<h2>Runs</h2><table><thead><tr><th>run</th><th>kind</th><th>gen</th><th>status</th><th>updated</th><th>why</th>${operator ? '<th>operator</th>' : ''}</tr></thead><tbody>${rows}</tbody></table>`;
}

export function renderGroupPage(opts: {
  basePath: string;
  principal: Principal;
  group: Group;
  /** Recent runs, newest first (optional). */
  runs?: RunRow[];
  /** Oldest first, as the chain: the newest generations (all of them when `report.length` is not larger). */
  records: LineageRecord[];
  report: ChainReport;
  checkpoint: Checkpoint | null;
}): string {
  const { group, records, report, checkpoint } = opts;
  const breaksAt = (n: number) => report.breaks.filter((b) => b.generation === n);
  const unsigned =
    report.headGeneration !== undefined ? report.headGeneration - (report.signedThroughGeneration ?? 0) : 0;
  const chainPanel = `<div class="panel" data-testid="chain-panel"><h3>Hash chain ${chainBadge(report)}</h3>
<p>${esc(report.length)} records${report.firstGeneration !== undefined ? `, generations ${esc(report.firstGeneration)}–${esc(report.headGeneration)}` : ''}.
${report.headHash ? `Head <span class="mono" title="${esc(report.headHash)}">${esc(short(report.headHash))}</span>.` : ''}</p>
${report.breaks.length ? `<p class="alert">${esc(report.breaks.length)}${report.breaks.length >= PROOF_LIST_LIMIT ? ' or more' : ''} break(s); first at generation ${esc(report.firstBreak?.generation)}: ${esc(report.firstBreak?.message)}</p>` : '<p class="muted">Every record matches its hash and links to the previous one.</p>'}</div>`;
  const cpCheck = checkpoint
    ? report.checkpoints.find((c) => c.generation === checkpoint.generation && c.signedAtMs === checkpoint.signedAtMs)
    : undefined;
  const cpPanel = `<div class="panel" data-testid="checkpoint-panel"><h3>Signed checkpoint ${checkpointBadge(report, checkpoint)}</h3>
${
  checkpoint
    ? `<p>Generation ${esc(checkpoint.generation)} signed ${esc(fmtTime(checkpoint.signedAtMs))} with Ed25519 key <span class="mono">${esc(checkpoint.keyId)}</span>.</p>
<p class="muted">${esc(cpCheck?.message ?? '')}${unsigned > 0 ? ` ${esc(unsigned)} newer record(s) not yet covered by a checkpoint.` : ''}</p>`
    : '<p class="muted">No checkpoint signed yet.</p>'
}
${
  report.checkpoints.filter((c) => c.status !== 'valid').length
    ? `<p class="alert">${report.checkpoints
        .filter((c) => c.status !== 'valid')
        .map((c) => esc(c.message))
        .join('<br>')}</p>`
    : ''
}</div>`;
  const membersNow = group.members
    .map(
      (m) =>
        `<tr><td>${esc(m.role)}</td><td>${esc(m.region)}</td><td class="mono">${esc(m.instanceId)}</td><td class="mono">${esc(m.keyId)}</td></tr>`,
    )
    .join('');
  const newestFirst = [...records].sort((a, b) => b.generation - a.generation);
  // a generation protects new wraps from its recording until the next generation is recorded
  const untilOf = (i: number) => (i === 0 ? undefined : newestFirst[i - 1]?.finishedAtMs);
  // the page shows the newest generations only (bounded at any history length); the export has every record
  const olderNote =
    records.length < report.length
      ? `<p class="muted" data-testid="older-generations">Showing the newest ${esc(records.length)} of ${esc(report.length)} generations; every generation is in the export (links above).</p>`
      : '';
  const legend = `<p class="legend">status:${['complete', 'degraded', 'diverged', 'superseded']
    .map((s) => `<span class="badge s-${s}">${s}</span>`)
    .join('')}</p>`;
  return layout({
    title: group.name,
    basePath: opts.basePath,
    principal: opts.principal,
    body: `<p><a href="${esc(opts.basePath)}/ui">← all groups</a></p>
<h1 data-testid="group-name">${esc(group.name)} <span class="muted mono">${esc(group.id)}</span></h1>
<p><span class="badge s-${esc(group.status)}" data-testid="group-status">${esc(group.status)}</span>
generation <b>${esc(group.currentGeneration)}</b> · last rotated ${esc(fmtTime(group.lastRotatedAtMs))}
${group.statusReason ? ` · ${esc(group.statusReason)}` : ''}</p>
<p class="muted" data-testid="last-verification">last verification: ${group.lastVerification ? `${esc(group.lastVerification.result)} at ${esc(fmtTime(group.lastVerification.atMs))} (${esc(group.lastVerification.trigger)})${group.lastVerification.problems.map((p) => `<br>${esc(p)}`).join('')}` : 'none yet'}</p>
${group.description ? `<p class="muted">${esc(group.description)}</p>` : ''}
<div class="integrity">${chainPanel}${cpPanel}</div>
${drillPanel(group, report)}${evidencePanel(group, report)}
<p>${exportLinks(opts.basePath, group.id)} <span class="muted">· proof JSON: GET /v1/groups/${esc(group.id)}/proof</span></p>
<h2>Timeline</h2>${olderNote}${axis(records, opts.basePath, group.id, new Set(report.breaks.map((b) => b.generation)))}${records.length ? legend : ''}
<h2>Members</h2><table><thead><tr><th>role</th><th>region</th><th>instance</th><th>key id</th></tr></thead><tbody>${membersNow}</tbody></table>
${runsSection(opts.basePath, opts.principal, opts.runs ?? [])}
<h2>Generations</h2>${newestFirst.map((r, i) => generationCard(r, breaksAt(r.generation), untilOf(i))).join('\n') || '<p class="muted">None yet.</p>'}`,
  });
}

/** The late evidence chain's integrity (from the proof's report); nothing while the group has no late evidence. */
function evidencePanel(group: Group, report: ChainReport): string {
  const chain = report.evidence;
  if (!chain || (chain.ok && chain.length === 0)) return '';
  const body = chain.ok
    ? `<p class="muted">Evidence chain: ${esc(chain.length)} record(s) of Activity Tracker evidence that arrived after their generation's record; every one matches its hash, links to the previous one and names its generation record by its hash${chain.signedThroughSeq ? `; signed through record ${esc(chain.signedThroughSeq)}` : ''}.</p>`
    : `<p class="alert">Evidence chain broken: ${esc(chain.breaks[0]?.message ?? chain.checkpoints.find((c) => c.status !== 'valid')?.message ?? '')}</p>`;
  return `<div class="panel" data-testid="evidence-panel"><h3>Late Activity Tracker evidence</h3>${body}
<p class="muted">JSON: GET /v1/groups/${esc(group.id)}/evidence</p></div>`;
}

/** The DR drill panel: the latest drill (from the group) and the drill chain's integrity (from the proof's report). */
function drillPanel(group: Group, report: ChainReport): string {
  const d = group.lastDrill;
  const chain = report.drills;
  const integrity = !chain
    ? ''
    : chain.ok
      ? `<p class="muted">Drill chain: ${esc(chain.length)} record(s), every one matches its hash and links to the previous one${chain.signedThroughSeq ? `; signed through drill ${esc(chain.signedThroughSeq)}` : ''}.</p>`
      : `<p class="alert">Drill chain broken: ${esc(chain.breaks[0]?.message ?? chain.checkpoints.find((c) => c.status !== 'valid')?.message ?? '')}</p>`;
  if (!d) {
    return `<div class="panel" data-testid="drill-panel"><h3>DR drills</h3><p class="muted">No drill recorded yet: <span class="mono">lockstep drill ${esc(group.id)}</span></p>${integrity}</div>`;
  }
  const badge = d.result === 'passed' ? 's-complete' : 's-diverged';
  return `<div class="panel" data-testid="drill-panel"><h3>DR drills <span class="badge ${badge}" data-testid="drill-result">${esc(d.result)}</span></h3>
<p>Drill ${esc(d.seq)} at ${esc(fmtTime(d.atMs))}: ${d.members.map((m) => `${esc(regionOf(m.crn))} ${esc(m.health)}`).join(' · ')} <span class="mono" title="${esc(d.hash)}">${esc(short(d.hash))}</span></p>
${d.problems.length ? `<p class="alert">${d.problems.map((p) => esc(p)).join('<br>')}</p>` : ''}${integrity}
<p class="muted">JSON: GET /v1/groups/${esc(group.id)}/drills</p></div>`;
}
