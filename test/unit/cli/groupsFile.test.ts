import { describe, expect, it } from 'vitest';
import { formatIssues, parseGroupsFile } from '../../../src/cli/groupsFile.js';

const G1 = '11111111-2222-3333-4444-555555555555';
const K1 = 'aaaaaaaa-2222-3333-4444-555555555555';
const K2 = 'bbbbbbbb-2222-3333-4444-555555555555';

const good = `
version: 1
defaults:
  schedule:
    every: 30d
    window: "01:00-05:00"
groups:
  - id: payments
    name: Payments root key
    primary: us-south
    duplicates: [us-east, eu-de]
  - id: ledger
    primary:
      region: us-south
      instanceId: ${G1}
      keyId: ${K1}
    duplicates:
      - crn: crn:v1:bluemix:public:kms:us-east:a/acct:${G1}:key:${K2}
    schedule:
      cron: "0 3 * * 0"
      timeZone: Europe/Berlin
      maxAge: 60d
`;

describe('parseGroupsFile', () => {
  it('accepts a valid file and fills defaults', () => {
    // Act
    const r = parseGroupsFile(good, { knownRegions: ['us-south', 'us-east', 'eu-de'] });
    // Assert
    expect(r.issues).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.groups).toHaveLength(2);
    const [payments, ledger] = r.groups;
    expect(payments).toMatchObject({
      id: 'payments',
      name: 'Payments root key',
      primary: { region: 'us-south' },
      duplicates: [{ region: 'us-east' }, { region: 'eu-de' }],
      schedule: { intervalMs: 30 * 86_400_000, window: { start: '01:00', end: '05:00' } },
    });
    // a group's own cron replaces the default "every" instead of merging with it
    expect(ledger?.schedule).toEqual({
      cron: '0 3 * * 0',
      timeZone: 'Europe/Berlin',
      maxAgeMs: 60 * 86_400_000,
      window: { start: '01:00', end: '05:00' },
    });
    expect(ledger?.duplicates[0]).toEqual({ region: 'us-east', instanceId: G1, keyId: K2 });
    expect(ledger?.name).toBe('ledger');
  });

  const cases: Array<{ case: string; text: string; path: string; line: number; msg: RegExp; opts?: object }> = [
    {
      case: 'interval shorter than the 1 h rule',
      text: 'groups:\n  - id: a\n    primary: us-south\n    duplicates: [us-east]\n    schedule:\n      every: 30m\n',
      path: 'groups[0].schedule.every',
      line: 6,
      msg: /30m is shorter than 1h: Key Protect allows one rotation per key per hour/,
    },
    {
      case: 'a cron that fires too often',
      text: 'groups:\n  - id: a\n    primary: us-south\n    duplicates: [us-east]\n    schedule: { cron: "*/10 * * * *" }\n',
      path: 'groups[0].schedule.cron',
      line: 5,
      msg: /fires every 10m, more often than Key Protect allows/,
    },
    {
      case: 'a bad cron',
      text: 'groups:\n  - id: a\n    primary: us-south\n    duplicates: [us-east]\n    schedule:\n      cron: "61 * * * *"\n',
      path: 'groups[0].schedule.cron',
      line: 6,
      msg: /is not a cron expression: Invalid value for minute: 61/,
    },
    {
      case: 'both every and cron',
      text: 'groups:\n  - id: a\n    primary: us-south\n    duplicates: [us-east]\n    schedule: { every: 30d, cron: "0 3 * * 0" }\n',
      path: 'groups[0].schedule',
      line: 5,
      msg: /either "every" or "cron", not both/,
    },
    {
      case: 'a typo in a field name',
      text: 'groups:\n  - id: a\n    primary: us-south\n    duplicate: [us-east]\n    schedule: { every: 30d }\n',
      path: 'groups[0].duplicate',
      line: 4,
      msg: /unknown field "duplicate" \(did you mean "duplicates"\?\)/,
    },
    {
      case: 'an invalid group id',
      text: 'groups:\n  - id: Payments_1\n    primary: us-south\n    duplicates: [us-east]\n    schedule: { every: 30d }\n',
      path: 'groups[0].id',
      line: 2,
      msg: /"Payments_1" is not a valid group id/,
    },
    {
      case: 'a duplicate group id',
      text: 'defaults: { schedule: { every: 30d } }\ngroups:\n  - { id: a, primary: us-south, duplicates: [us-east] }\n  - { id: a, primary: us-south, duplicates: [eu-de] }\n',
      path: 'groups[1].id',
      line: 4,
      msg: /duplicate group id "a" \(also groups\[0\]\)/,
    },
    {
      case: 'no duplicates',
      text: 'groups:\n  - id: a\n    primary: us-south\n    duplicates: []\n    schedule: { every: 30d }\n',
      path: 'groups[0].duplicates',
      line: 4,
      msg: /a group needs at least one duplicate/,
    },
    {
      case: 'a region with no configured instance',
      text: 'groups:\n  - id: a\n    primary: us-south\n    duplicates: [jp-tok]\n    schedule: { every: 30d }\n',
      path: 'groups[0].duplicates[0]',
      line: 4,
      msg: /no Key Protect instance is configured for region jp-tok \(configured: us-south, us-east\)/,
      opts: { knownRegions: ['us-south', 'us-east'] },
    },
    {
      case: 'two new members in the same instance',
      text: 'groups:\n  - id: a\n    primary: us-south\n    duplicates: [us-south]\n    schedule: { every: 30d }\n',
      path: 'groups[0].duplicates[0]',
      line: 4,
      msg: /two members of this group would be created in the same instance/,
    },
    {
      case: 'a bad window',
      text: 'groups:\n  - id: a\n    primary: us-south\n    duplicates: [us-east]\n    schedule: { every: 30d, window: "25:00-03:00" }\n',
      path: 'groups[0].schedule.window',
      line: 5,
      msg: /must be "HH:MM-HH:MM"/,
    },
    {
      case: 'an unknown time zone',
      text: 'groups:\n  - id: a\n    primary: us-south\n    duplicates: [us-east]\n    schedule:\n      every: 30d\n      timeZone: Mars/Olympus\n',
      path: 'groups[0].schedule.timeZone',
      line: 7,
      msg: /not an IANA time zone/,
    },
    {
      case: 'no schedule and no default',
      text: 'groups:\n  - id: a\n    primary: us-south\n    duplicates: [us-east]\n',
      path: 'groups[0]',
      line: 2,
      msg: /missing "schedule" \(and no defaults\.schedule\)/,
    },
    {
      case: 'a bad member',
      text: 'groups:\n  - id: a\n    primary: { region: us-south, instanceId: nope }\n    duplicates: [us-east]\n    schedule: { every: 30d }\n',
      path: 'groups[0].primary.instanceId',
      line: 3,
      msg: /"nope" is not a Key Protect instance GUID/,
    },
    {
      case: 'a key in two groups',
      text: `defaults: { schedule: { every: 30d } }\ngroups:\n  - { id: a, primary: { region: us-south, instanceId: ${G1}, keyId: ${K1} }, duplicates: [us-east] }\n  - { id: b, primary: { region: us-south, instanceId: ${G1}, keyId: ${K1} }, duplicates: [us-east] }\n`,
      path: 'groups[1].primary',
      line: 4,
      msg: /key aaaaaaaa-.* is already a member of group a/,
    },
    {
      case: 'maxAge shorter than every',
      text: 'groups:\n  - id: a\n    primary: us-south\n    duplicates: [us-east]\n    schedule: { every: 30d, maxAge: 10d }\n',
      path: 'groups[0].schedule.maxAge',
      line: 5,
      msg: /maxAge 10d is shorter than every 30d/,
    },
    {
      case: 'a list at the top',
      text: '- id: a\n',
      path: '',
      line: 1,
      msg: /expected a mapping with a "groups" list/,
    },
  ];

  it.each(cases)('reports $case at its path and line', ({ text, path, line, msg, opts }) => {
    // Act
    const r = parseGroupsFile(text, opts);
    // Assert
    expect(r.ok).toBe(false);
    const hit = r.issues.find((i) => i.severity === 'error' && msg.test(i.message));
    expect(hit, JSON.stringify(r.issues)).toBeDefined();
    expect(hit?.path).toBe(path);
    expect(hit?.line).toBe(line);
    expect(r.groups.find((g) => g.id === 'a' && path.startsWith('groups[0]'))).toBeUndefined();
  });

  it('allows a shorter interval when the stack shortens the 1 h rule (dev)', () => {
    const text = 'groups:\n  - id: a\n    primary: us-south\n    duplicates: [us-east]\n    schedule: { every: 3m }\n';
    expect(parseGroupsFile(text).ok).toBe(false);
    expect(parseGroupsFile(text, { minIntervalMs: 120_000 }).ok).toBe(true);
  });

  it('reports YAML syntax errors with line and column', () => {
    const r = parseGroupsFile('groups:\n  - id: a\n    primary: [us-south\n');
    expect(r.ok).toBe(false);
    expect(r.issues[0]?.message).toMatch(/^not valid YAML/);
    expect(r.issues[0]?.line).toBeGreaterThan(0);
  });

  it('formats issues as file:line:col severity path: message', () => {
    const r = parseGroupsFile(
      'groups:\n  - id: a\n    primary: us-south\n    duplicates: [us-east]\n    schedule: { every: 1m }\n',
    );
    expect(formatIssues(r.issues, 'groups.yaml')).toMatch(
      /^groups\.yaml:5:17 {2}error {2}groups\[0\]\.schedule\.every: 1m is shorter/,
    );
  });

  it('validates the shipped example', async () => {
    const { readFileSync } = await import('node:fs');
    const text = readFileSync(new URL('../../../examples/groups.yaml', import.meta.url), 'utf8');
    const r = parseGroupsFile(text, { knownRegions: ['us-south', 'us-east', 'eu-de'] });
    expect(r.issues.filter((i) => i.severity === 'error')).toEqual([]);
    expect(r.groups.length).toBeGreaterThan(0);
  });
});
