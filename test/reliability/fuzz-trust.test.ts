/**
 * Fuzzing the attacker-controlled fields of issue 13 (findings 2 and 4): the `ce-*` headers anyone can send to the
 * public `rotate` function, and free text on its way into the signed history.
 *
 * - rotate, without the cron secret: random `Ce-Type` (the ping type and variants), `Ce-Id`, `Ce-Source`, `Ce-Time`,
 *   `Ce-Specversion`, extension `Ce-*` headers, content types and bodies (including a `cronSecret` that is not one)
 *   → always 401, an answer that names no tick, and not one document changed in the store;
 * - rotate, with the secret in the data: the same random headers → 200 `{ok, tick: cron:<uuid>}`, never an echo of a
 *   header value, and the tick's lease holder never built from them;
 * - the lineage text boundary: random text (formula prefixes, controls, separators, bidi, surrogates, long) as
 *   `trigger.by`, `trigger.reason`, a note or an evidence field → the record is refused with VALIDATION_FAILED naming
 *   the field, or it is built and then every CSV cell is formula-free and the CSV parses back to the exact record.
 */
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { csvHeader, parseCsv, recordsFromCsv, toCsvRows } from '../../src/api/export.js';
import { CE_PING_TYPE } from '../../src/codeengine/index.js';
import { hasCode, type LineageRecord } from '../../src/core/index.js';
import { buildLineageRecord, hashRecord, type LineageRecordInput } from '../../src/lineage/index.js';
import { recordInput } from '../unit/lineage/fixtures.js';
import { functionStackPerFile } from './_lib/accessStack.js';
import { type CaseVerdict, createTally, fuzz, fuzzRuns, recordFuzzRow } from './_lib/fuzzCheck.js';
import { storeDigest } from './_lib/secretsStore.js';

const stack = functionStackPerFile({ functionLogLevel: 'info' });

/** Text an attacker would try: formula prefixes, control and separator characters, bidi, markup, long runs. */
const hostileText = fc.oneof(
  fc.string({ maxLength: 60 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc
    .tuple(fc.constantFrom('=', '+', '-', '@', '\t', '\r', "'", ' =', '\u202e', '\u2028', '\u0000'), fc.string())
    .map(([a, b]) => a + b),
  fc.constantFrom(
    '=HYPERLINK("http://evil.example/x","approved by alice (operator)")',
    'AUDITOR-SIGNED-OFF: all good',
    '<script>alert(1)</script>',
    '\ud800',
    'x'.repeat(1_200),
  ),
);

/** A value Node's HTTP client accepts in a header (visible latin-1, no CR/LF). */
const headerSafe = (v: string) => v.replace(/[^\x20-\x7e\xa0-\xff]/g, '').trim();
const headerValue = hostileText.map(headerSafe).filter((v) => v.length > 0 && v.length < 4_000);

const ceHeaders = fc.record(
  {
    'ce-type': fc.oneof(
      fc.constant(CE_PING_TYPE),
      fc.constantFrom(CE_PING_TYPE.toUpperCase(), ` ${CE_PING_TYPE}`, 'dev.knative.sources.ping.x', 'x'),
      headerValue,
    ),
    'ce-id': headerValue,
    'ce-source': headerValue,
    'ce-time': fc.oneof(
      headerValue,
      fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
    ),
    'ce-specversion': fc.constantFrom('1.0', '0.3', '99'),
    'ce-subject': headerValue,
    'ce-extension': headerValue,
    'x-request-id': headerValue,
  },
  { requiredKeys: ['ce-type', 'ce-id'] },
);

const badBody = fc.oneof(
  fc.constant<[string | undefined, string]>([undefined, 'application/json']),
  fc.jsonValue().map((v): [string, string] => [JSON.stringify(v), 'application/json']),
  hostileText.map((t): [string, string] => [JSON.stringify({ source: 'cron', cronSecret: t }), 'application/json']),
  hostileText.map((t): [string, string] => [t, 'text/plain']),
);

async function post(headers: Record<string, string>, body: string | undefined) {
  const res = await fetch(stack().runner.url('rotate'), { method: 'POST', headers, ...(body ? { body } : {}) });
  return { status: res.status, requestId: res.headers.get('x-request-id') ?? '', text: await res.text() };
}

describe('fuzz: attacker-controlled fields (ce-* headers, free text into the lineage)', () => {
  it('rotate: random ce-* headers and bodies without the secret → 401, nothing changes; with it → a status only', async () => {
    const s = stack();
    const tally = createTally();
    const before = await storeDigest(s.couch);
    await fuzz(
      tally,
      'rotate without the cron secret',
      fc.tuple(ceHeaders, badBody),
      async ([headers, [body, type]]): Promise<CaseVerdict> => {
        const a = await post({ ...headers, 'content-type': type }, body);
        const problems: string[] = [];
        if (a.status !== 401) problems.push(`answered ${a.status}`);
        if (/tick|holder|deferred/.test(a.text)) problems.push('the answer names the tick');
        return problems;
      },
    );
    if ((await storeDigest(s.couch)) !== before) {
      tally.violations += 1;
      tally.examples.push('the store changed during the unauthenticated cases');
    }
    const from = s.functionLogs.length;
    let pinged = 0;
    await fuzz(
      tally,
      'rotate with the cron secret',
      ceHeaders.map((h) => ({ ...h, 'ce-type': CE_PING_TYPE })),
      async (headers): Promise<CaseVerdict> => {
        const body = JSON.stringify({ source: 'cron', cronSecret: s.cronSecret });
        const a = await post({ ...headers, 'content-type': 'application/json' }, body);
        const problems: string[] = [];
        if (a.status !== 200) problems.push(`answered ${a.status}: ${a.text.slice(0, 100)}`);
        let reply: Record<string, unknown> = {};
        try {
          reply = JSON.parse(a.text) as Record<string, unknown>;
        } catch {
          problems.push('the answer is not JSON');
        }
        if (Object.keys(reply).sort().join(',') !== 'ok,tick') problems.push(`answer keys ${Object.keys(reply)}`);
        if (!/^cron:[0-9a-f-]{36}$/.test(String(reply.tick))) problems.push(`tick ${String(reply.tick)}`);
        if (headers['ce-id'].length > 3 && a.text.includes(headers['ce-id'])) problems.push('the Ce-Id is echoed');
        pinged += 1;
        return problems;
      },
      { numRuns: fuzzRuns(40) },
    );
    const holders = s.functionLogs
      .slice(from)
      .map((l) => JSON.parse(l) as { msg?: string; tick?: string })
      .filter((l) => l.msg === 'tick.summary')
      .map((l) => String(l.tick));
    // a holder is the function's name and a server nonce, nothing else (so nothing of a Ce-Id)
    const foreign = holders.filter(
      (h) => !/^rotate~[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(h),
    );
    if (new Set(holders).size !== holders.length || foreign.length > 0 || holders.length !== pinged) {
      tally.violations += 1;
      tally.examples.push(
        `lease holders: ${holders.length} for ${pinged} pings, ${holders.length - new Set(holders).size} shared, not rotate~<nonce>: ${foreign.slice(0, 3).join(', ')}`,
      );
    }
    const result = recordFuzzRow(
      tally,
      [],
      'rotate function: ce-* headers and bodies',
      'random Ce-Type/Ce-Id/Ce-Source/Ce-Time/Ce-Specversion/extension headers × bodies (none, JSON, wrong cronSecret, text): without the secret → 401, store digest unchanged; with it → 200 {ok, tick: cron:<uuid>}, no echo, lease holders unique and not derived from the Ce-Id',
    );
    expect(result.violations, result.examples?.join('\n')).toBe(0);
  }, 300_000);

  it('lineage: random free text is refused by the one boundary or exported formula-free and round-trips', async () => {
    const tally = createTally();
    const fields = ['trigger.by', 'trigger.reason', 'notes', 'evidence.initiator', 'evidence.correlationId'] as const;
    const place = (field: (typeof fields)[number], text: string): LineageRecordInput => {
      const input = recordInput(1);
      if (field === 'trigger.by') return { ...input, trigger: { kind: 'schedule', by: text } };
      if (field === 'trigger.reason') return { ...input, trigger: { kind: 'operator', by: 'alice', reason: text } };
      if (field === 'notes') return { ...input, notes: [text] };
      const [m0, ...rest] = input.members;
      const key = field === 'evidence.initiator' ? 'initiator' : 'correlationId';
      return { ...input, members: [{ ...m0!, evidence: [{ ...m0!.evidence[0]!, [key]: text }] }, ...rest] };
    };
    let accepted = 0;
    await fuzz(
      tally,
      'lineage free text',
      fc.tuple(fc.constantFrom(...fields), hostileText),
      async ([field, text]): Promise<CaseVerdict> => {
        let record: LineageRecord;
        try {
          record = buildLineageRecord(place(field, text));
        } catch (err) {
          if (!hasCode(err, 'VALIDATION_FAILED')) return [`refused with ${String(err)}`];
          const named = field.split('.').pop()!;
          return (err as Error).message.includes(named) ? [] : [`the refusal does not name ${named}`];
        }
        accepted += 1;
        const problems: string[] = [];
        const codes = [...text].map((c) => c.codePointAt(0)!);
        const control = codes.some((c) => c < 0x20 || (c >= 0x7f && c <= 0x9f) || c === 0x2028 || c === 0x2029);
        if (/^[=+\-@]/.test(text) || control) problems.push('a formula or control character was accepted');
        const csv = csvHeader() + toCsvRows(record);
        for (const row of parseCsv(csv)) {
          for (const cell of row) if (/^[=+\-@\t\r]/.test(cell)) problems.push(`CSV cell ${cell.slice(0, 30)}`);
        }
        const back = recordsFromCsv(csv);
        if (!isDeepStrictEqual(back, [record]) || hashRecord(back[0]!) !== record.hash) {
          problems.push('the CSV does not parse back to the record');
        }
        return problems;
      },
      { numRuns: fuzzRuns(500) },
    );
    const result = recordFuzzRow(
      tally,
      [],
      'lineage free text (trigger, reason, notes, evidence)',
      `random text with formula prefixes, controls, separators, bidi, lone surrogates and long runs in 5 fields: refused with VALIDATION_FAILED naming the field, or accepted (${accepted}) with every CSV cell formula-free and an exact CSV round trip`,
    );
    expect(result.violations, result.examples?.join('\n')).toBe(0);
  }, 120_000);
});
