import { describe, expect, it } from 'vitest';
import { decodeCursor, encodeCursor } from '../../../src/api/cursor.js';
import { csvCell, csvHeader, toCsvRows } from '../../../src/api/export.js';
import { CSV_COLUMNS, parseCsv, recordsFromCsv } from '../../../src/api/index.js';
import { parseTime } from '../../../src/api/params.js';
import { esc, renderGroupPage } from '../../../src/api/ui.js';
import { hashRecord, verifyChain } from '../../../src/lineage/index.js';
import { makeChain, makeGroup } from './support/fakes.js';

describe('cursor', () => {
  it('round-trips within its scope and refuses any other scope or edit', () => {
    const c = encodeCursor('store-key-17', 'generations:alpha::');
    expect(decodeCursor(c, 'generations:alpha::')).toBe('store-key-17');
    expect(() => decodeCursor(c, 'generations:beta::')).toThrow(/another query/);
    const flipped = `${c.slice(0, 3)}${c[3] === 'A' ? 'B' : 'A'}${c.slice(4)}`;
    expect(() => decodeCursor(flipped, 'generations:alpha::')).toThrow(
      expect.objectContaining({ code: 'INVALID_CURSOR' }),
    );
    expect(() => decodeCursor('x'.repeat(2000), 's')).toThrow(expect.objectContaining({ code: 'INVALID_CURSOR' }));
  });
});

describe('params', () => {
  it('parses times', () => {
    expect(parseTime('since', '2026-01-31T00:00:00Z')).toBe(Date.UTC(2026, 0, 31));
    expect(parseTime('since', '2026-01-31T01:00:00+01:00')).toBe(Date.UTC(2026, 0, 31));
    expect(parseTime('since', '1700000000000')).toBe(1_700_000_000_000);
    expect(() => parseTime('since', '2026-02-30')).toThrow(/RFC 3339/);
  });
});

describe('CSV export', () => {
  it('quotes per RFC 4180 and parses back', () => {
    expect(csvCell('plain')).toBe('plain');
    expect(csvCell('a,b')).toBe('"a,b"');
    expect(csvCell('say "hi"')).toBe('"say ""hi"""');
    expect(csvCell('two\nlines')).toBe('"two\nlines"');
    // the spreadsheet formula guard (OWASP CSV injection), reversible
    expect(csvCell('=HYPERLINK("http://evil.example/x","ok")')).toBe(
      '"\'=HYPERLINK(""http://evil.example/x"",""ok"")"',
    );
    for (const lead of ['=', '+', '-', '@', '\t', '\r', "'"])
      expect(csvCell(`${lead}1`).replace(/^"/, '')[0]).toBe("'");
    expect(csvCell('a=b')).toBe('a=b');
    expect(parseCsv('a,"b,c","d""e"\r\n"x\r\ny",,z\r\n')).toEqual([
      ['a', 'b,c', 'd"e'],
      ['x\r\ny', '', 'z'],
    ]);
  });

  it('writes one row per member and rebuilds records whose hashes still verify', () => {
    const chain = makeChain(makeGroup('csv-group'), 3);
    const text = csvHeader() + chain.map(toCsvRows).join('');
    const rows = parseCsv(text);
    expect(rows[0]).toEqual([...CSV_COLUMNS]);
    expect(rows).toHaveLength(1 + 3 * 3);
    const back = recordsFromCsv(text);
    expect(back).toEqual(chain);
    for (const r of back) expect(hashRecord(r)).toBe(r.hash);
    expect(verifyChain(back, [], {}).ok).toBe(true);
  });

  it('guards formula-looking cells of old history and still parses back to the exact records', () => {
    // a record written before lineage text was validated (hash recomputed, as a store could hold it)
    const [first] = makeChain(makeGroup('csv-old'), 1);
    const body = {
      ...first!,
      trigger: { kind: 'schedule' as const, by: '=HYPERLINK("http://evil.example")', reason: "'+1" },
    };
    const old = { ...body, hash: hashRecord(body) };
    const text = csvHeader() + toCsvRows(old);
    for (const row of parseCsv(text).slice(1)) {
      for (const cell of row) expect(cell, cell).not.toMatch(/^[=+\-@\t\r]/);
    }
    expect(recordsFromCsv(text)).toEqual([old]);
  });

  it('refuses a file that is not a lockstep export', () => {
    expect(() => recordsFromCsv('a,b\r\n1,2\r\n')).toThrow(/header differs/);
  });
});

describe('timeline rendering', () => {
  it('escapes every interpolated value', () => {
    expect(esc(`<img src=x onerror="alert('x')">&`)).toBe(
      '&lt;img src=x onerror=&quot;alert(&#39;x&#39;)&quot;&gt;&amp;',
    );
    const group = { ...makeGroup('xss'), name: '<b>evil</b>', statusReason: '"><script>x()</script>' };
    const records = makeChain(group, 2, { reason: '<img src=x onerror=alert(1)>' });
    const html = renderGroupPage({
      basePath: '',
      principal: { iamId: '<iam>', role: 'auditor' },
      group,
      records,
      report: verifyChain(records, [], {}),
      checkpoint: null,
    });
    expect(html).not.toMatch(/<script|<img|<b>evil/);
    expect(html).toContain('&lt;b&gt;evil&lt;/b&gt;');
    expect(html).toContain('no checkpoint');
    expect(html.match(/data-testid="axis-marker"/g)).toHaveLength(2);
  });
});
