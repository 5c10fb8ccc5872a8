import type { ExportPosition } from '../app/index.js';
import type {
  DrillRecord,
  EvidenceRecord,
  GroupId,
  HttpResponse,
  LineageMember,
  LineageRecord,
} from '../core/index.js';
import { AppError } from '../core/index.js';
import { FORMULA_LEADING } from '../lineage/index.js';
import { parseExportLimit } from './params.js';
import { lineageView } from './views.js';

/** Export formats of `GET /v1/export`. */
export const EXPORT_FORMATS = ['jsonl', 'csv'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

/**
 * CSV columns, in order: one row per member per generation (RFC 4180, CRLF line ends, header row). Record-level
 * columns repeat on each member row. The last columns hold the nested parts as JSON, so the CSV parses back into
 * the exact records (and their hashes can be recomputed from it).
 */
export const CSV_COLUMNS = [
  'groupId',
  'generation',
  'status',
  'fingerprint',
  'triggerKind',
  'triggerBy',
  'triggerReason',
  'runId',
  'startedAtMs',
  'finishedAtMs',
  'memberIndex',
  'memberRole',
  'memberRegion',
  'memberInstanceId',
  'memberKeyId',
  'memberCrn',
  'keyVersionId',
  'rotatedAtMs',
  'evidenceEventIds',
  'canariesOk',
  'prevHash',
  'hash',
  'memberEvidenceJson',
  'verificationJson',
  'notesJson',
] as const;

/** Documentation of each CSV column (used by the OpenAPI document). */
export const CSV_COLUMN_DOCS: Record<(typeof CSV_COLUMNS)[number], string> = {
  groupId: 'Group id',
  generation: 'Generation number (1 = first material)',
  status: 'complete | degraded | diverged | superseded',
  fingerprint: 'Public fingerprint of the generation material (fp1:…)',
  triggerKind: 'schedule | event | operator',
  triggerBy: 'Who or what triggered it (IAM id, tick id, event id)',
  triggerReason: 'Optional reason given by the trigger (empty when absent)',
  runId: 'The rotation run that produced the generation',
  startedAtMs: 'Run start, ms since the epoch',
  finishedAtMs: 'Generation recorded, ms since the epoch',
  memberIndex: '0-based position of the member in the record (empty when the record has no members)',
  memberRole: 'primary | duplicate',
  memberRegion: 'Key Protect region of the member',
  memberInstanceId: 'Key Protect instance GUID',
  memberKeyId: 'Key Protect key id',
  memberCrn: 'Key CRN',
  keyVersionId: "The member's Key Protect version id holding this generation",
  rotatedAtMs: 'When the member got the version, ms since the epoch',
  evidenceEventIds: 'Activity Tracker event ids attached to the member, separated by ";"',
  canariesOk: 'true when every canary of the generation matched',
  prevHash: 'Hash of the previous record of the group (chain link)',
  hash: 'SHA-256 of the canonical record',
  memberEvidenceJson: "The member's Activity Tracker evidence (JSON array)",
  verificationJson: 'Canary evidence of the generation (JSON array, repeated on each member row)',
  notesJson: 'Notes of the generation (JSON array; empty when absent)',
};

/**
 * Upper bound of one export page's body in bytes (besides the record count `limit`): well under Code Engine's 5 MB
 * response limit, and one page stays a quick response at any history length. The rest follows the `next` link.
 */
export const EXPORT_PAGE_MAX_BYTES = 1_000_000;

/** The position after `record` in the export order, for a cursor (`<generation>:<groupId>`). */
export function encodeExportPosition(record: Pick<LineageRecord, 'groupId' | 'generation'>): string {
  return `${record.generation}:${record.groupId}`;
}

/** @throws {AppError} INVALID_CURSOR */
export function decodeExportPosition(s: string): ExportPosition {
  const m = /^(\d{1,9}):([a-z0-9][a-z0-9-]{0,62})$/.exec(s);
  if (!m) {
    throw new AppError('INVALID_CURSOR', 'The cursor is not valid (content); start again without a cursor', {
      details: { field: 'cursor' },
    });
  }
  return { generation: Number(m[1]), groupId: m[2] as GroupId };
}

/** Builds one page of the lineage export (`/v1/export`, `/ui/export`): `path` is the route the next link names. */
export type ExportBody = (
  format: ExportFormat,
  groupId: GroupId | undefined,
  page: { limit?: number; cursor?: string; path: string },
) => Promise<HttpResponse>;

/** The paging parameters of an export request. @throws {AppError} VALIDATION_FAILED */
export function exportPage(
  path: string,
  query: Record<string, string>,
): { limit?: number; cursor?: string; path: string } {
  return {
    path,
    ...(query.limit !== undefined ? { limit: parseExportLimit(query.limit) } : {}),
    ...(query.cursor !== undefined ? { cursor: query.cursor } : {}),
  };
}

/** One JSONL line: the canonical record and `\n`. */
export function toJsonlLine(record: LineageRecord): string {
  return `${JSON.stringify(lineageView(record))}\n`;
}

/** The CSV header line (with CRLF). */
export function csvHeader(): string {
  return `${CSV_COLUMNS.join(',')}\r\n`;
}

/** The CSV rows of one record (one per member), each ending in CRLF. */
export function toCsvRows(record: LineageRecord): string {
  const r = lineageView(record);
  const base = {
    groupId: r.groupId,
    generation: String(r.generation),
    status: r.status,
    fingerprint: r.fingerprint,
    triggerKind: r.trigger.kind,
    triggerBy: r.trigger.by,
    triggerReason: r.trigger.reason ?? '',
    runId: r.runId,
    startedAtMs: String(r.startedAtMs),
    finishedAtMs: String(r.finishedAtMs),
    canariesOk: String(r.verification.every((c) => c.ok)),
    prevHash: r.prevHash,
    hash: r.hash,
    verificationJson: JSON.stringify(r.verification),
    notesJson: r.notes === undefined ? '' : JSON.stringify(r.notes),
  };
  const memberCells = (m: LineageMember | undefined, i: number) => ({
    memberIndex: m ? String(i) : '',
    memberRole: m?.role ?? '',
    memberRegion: m?.region ?? '',
    memberInstanceId: m?.instanceId ?? '',
    memberKeyId: m?.keyId ?? '',
    memberCrn: m?.crn ?? '',
    keyVersionId: m?.keyVersionId ?? '',
    rotatedAtMs: m ? String(m.rotatedAtMs) : '',
    evidenceEventIds: m ? m.evidence.map((e) => e.eventId).join(';') : '',
    memberEvidenceJson: m ? JSON.stringify(m.evidence) : '',
  });
  const members: (LineageMember | undefined)[] = r.members.length ? r.members : [undefined];
  return members
    .map((m, i) => {
      const row: Record<string, string> = { ...base, ...memberCells(m, i) };
      return `${CSV_COLUMNS.map((c) => csvCell(row[c] ?? '')).join(',')}\r\n`;
    })
    .join('');
}

/**
 * One CSV cell: the spreadsheet formula guard, then RFC 4180 quoting (cells with a comma, quote, CR or LF are quoted,
 * inner quotes doubled). A cell that a spreadsheet would read as a formula — one starting with `=`, `+`, `-`, `@`, a
 * tab or a carriage return (OWASP "CSV injection") — gets a leading `'`, and so does a cell that already starts with
 * `'`, so {@link unguardCsvCell} restores every value exactly and the export still parses back into the records.
 * Applied to every cell: history written before lineage text was validated may hold such values.
 */
export function csvCell(value: string): string {
  const guarded = FORMULA_LEADING.test(value) || value.startsWith("'") ? `'${value}` : value;
  return /[",\r\n]/.test(guarded) ? `"${guarded.replace(/"/g, '""')}"` : guarded;
}

/** The inverse of the formula guard of {@link csvCell} (on a cell already unquoted by {@link parseCsv}). */
export function unguardCsvCell(cell: string): string {
  return cell.startsWith("'") ? cell.slice(1) : cell;
}

/** Parses RFC 4180 CSV text into rows of cells. @throws {AppError} VALIDATION_FAILED on an unterminated quote */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let i = 0;
  let quoted = false;
  while (i < text.length) {
    const ch = text[i] as string;
    if (quoted) {
      if (ch === '"') {
        if (text[i + 1] === '"') {
          cell += '"';
          i += 2;
          continue;
        }
        quoted = false;
        i++;
        continue;
      }
      cell += ch;
      i++;
      continue;
    }
    if (ch === '"' && cell === '') {
      quoted = true;
      i++;
    } else if (ch === ',') {
      row.push(cell);
      cell = '';
      i++;
    } else if (ch === '\r' && text[i + 1] === '\n') {
      row.push(cell);
      rows.push(row);
      row = [];
      cell = '';
      i += 2;
    } else if (ch === '\n') {
      row.push(cell);
      rows.push(row);
      row = [];
      cell = '';
      i++;
    } else {
      cell += ch;
      i++;
    }
  }
  if (quoted) throw new AppError('VALIDATION_FAILED', 'CSV ends inside a quoted cell');
  if (cell !== '' || row.length) {
    row.push(cell);
    rows.push(row);
  }
  return rows;
}

/**
 * Rebuilds lineage records from an export CSV (the inverse of {@link toCsvRows}), in file order.
 * @throws {AppError} VALIDATION_FAILED when the header is not the documented one
 */
export function recordsFromCsv(text: string): LineageRecord[] {
  const [header, ...rows] = parseCsv(text);
  if (!header || header.join(',') !== CSV_COLUMNS.join(',')) {
    throw new AppError('VALIDATION_FAILED', 'Not a lockstep lineage export: the CSV header differs');
  }
  const out: LineageRecord[] = [];
  const byKey = new Map<string, LineageRecord>();
  for (const cells of rows) {
    const c = Object.fromEntries(CSV_COLUMNS.map((name, i) => [name, unguardCsvCell(cells[i] ?? '')])) as Record<
      (typeof CSV_COLUMNS)[number],
      string
    >;
    const key = `${c.groupId}\u0000${c.generation}`;
    let rec = byKey.get(key);
    if (!rec) {
      rec = {
        groupId: c.groupId,
        generation: Number(c.generation),
        fingerprint: c.fingerprint,
        trigger: { kind: c.triggerKind, by: c.triggerBy, ...(c.triggerReason ? { reason: c.triggerReason } : {}) },
        runId: c.runId,
        startedAtMs: Number(c.startedAtMs),
        finishedAtMs: Number(c.finishedAtMs),
        members: [],
        verification: JSON.parse(c.verificationJson),
        status: c.status,
        ...(c.notesJson ? { notes: JSON.parse(c.notesJson) } : {}),
        prevHash: c.prevHash,
        hash: c.hash,
      } as unknown as LineageRecord;
      byKey.set(key, rec);
      out.push(rec);
    }
    if (c.memberIndex !== '') {
      rec.members.push({
        role: c.memberRole,
        region: c.memberRegion,
        instanceId: c.memberInstanceId,
        keyId: c.memberKeyId,
        crn: c.memberCrn,
        keyVersionId: c.keyVersionId,
        rotatedAtMs: Number(c.rotatedAtMs),
        evidence: JSON.parse(c.memberEvidenceJson),
      } as unknown as LineageMember);
    }
  }
  return out;
}

/** The parsed lines of a JSONL export. */
const jsonlLines = (text: string): Array<{ kind?: unknown }> =>
  text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as { kind?: unknown });

/** Parses a JSONL export back into records (the generation records: drill and evidence lines are skipped). */
export function recordsFromJsonl(text: string): LineageRecord[] {
  return jsonlLines(text).filter((r) => r.kind !== 'drill' && r.kind !== 'evidence') as LineageRecord[];
}

/** The DR drill records of a JSONL export (lines with `"kind": "drill"`, after the generations). */
export function drillsFromJsonl(text: string): DrillRecord[] {
  return jsonlLines(text).filter((r) => r.kind === 'drill') as DrillRecord[];
}

/** The late evidence records of a JSONL export (lines with `"kind": "evidence"`, after the generations). */
export function evidenceFromJsonl(text: string): EvidenceRecord[] {
  return jsonlLines(text).filter((r) => r.kind === 'evidence') as EvidenceRecord[];
}
