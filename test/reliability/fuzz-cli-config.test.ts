/**
 * Bad input, CLI: the configuration layers (flags > environment > config file > .lockstep/dev.json) and the
 * `group apply -f` groups-file validation, driven through `runCli` exactly as `bin/lockstep` runs it (argv, env, cwd)
 * in a scratch directory. Every case carries at least one defect (malformed JSON/YAML, wrong types, unknown keys,
 * huge values, traversal in paths, forged CRNs, alias bombs, …).
 *
 * The invariant, per case: exit code 2 (usage or configuration error, as `lockstep --help` documents), one JSON error
 * on stderr (`--json`) with a message that says what to fix (no stack trace, bounded length), nothing on stdout, no
 * network call, no file written, changed or removed, and `runCli` never rejects. Direct calls check the same of
 * `resolveConfig` (only CliError exit 2 may escape) and `parseGroupsFile` (never throws; reports errors).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { CliError, parseGroupsFile, resolveConfig, runCli } from '../../src/cli/index.js';
import {
  forgedCrn,
  hugeString,
  injectedValue,
  invalidGroupId,
  junkJson,
  malformedJsonText,
  notAnObject,
  notAString,
  oddUnicode,
  traversal,
} from './_lib/fuzzArbitraries.js';
import { type CaseVerdict, createTally, fuzz, fuzzRuns, recordFuzzRow } from './_lib/fuzzCheck.js';
import { diffDir, snapshotDir } from './_lib/fuzzState.js';
import { scale } from './_lib/report.js';

let root: string;
const crashes: string[] = [];
const onCrash = (err: unknown) => crashes.push(err instanceof Error ? `${err.name}: ${err.message}` : String(err));

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'lockstep-fuzz-cli-'));
  process.on('unhandledRejection', onCrash);
  process.on('uncaughtException', onCrash);
});

afterAll(() => {
  process.off('unhandledRejection', onCrash);
  process.off('uncaughtException', onCrash);
  if (root) rmSync(root, { recursive: true, force: true });
});

// ---------------------------------------------------------------- valid bases

const US_SOUTH = '11111111-1111-4111-8111-111111111111';
const US_EAST = '22222222-2222-4222-8222-222222222222';
const ACCOUNT = 'a1b2c3d4e5f60718293a4b5c6d7e8f90';
const ESCROW = `crn:v1:bluemix:public:kms:us-south:a/${ACCOUNT}:${US_SOUTH}:key:33333333-3333-4333-8333-333333333333`;
const MANAGED = [
  {
    region: 'us-south',
    accountId: ACCOUNT,
    instanceId: US_SOUTH,
    keyId: '4'.repeat(8) + '-4444-4444-8444-444444444444',
  },
];

const validConfig = (): Record<string, unknown> => ({
  iam: { url: 'http://127.0.0.1:4601', apiKey: 'key-from-file' },
  api: { url: 'http://127.0.0.1:4602' },
  cloudant: { url: 'http://127.0.0.1:4603' },
  keyProtect: {
    'us-south': { url: 'http://127.0.0.1:4604', instanceId: US_SOUTH },
    'us-east': { url: 'http://127.0.0.1:4605', instanceId: US_EAST },
  },
  escrow: { crn: ESCROW },
  rotationMinInterval: '1h',
});

const validDev = (): Record<string, unknown> => ({
  iam: { url: 'http://127.0.0.1:4601', apiKeys: { operator: 'op-key', auditor: 'au-key' } },
  keyProtect: { 'us-south': { url: 'http://127.0.0.1:4604', instanceId: US_SOUTH } },
  cloudant: { url: 'http://127.0.0.1:4603' },
  api: { url: 'http://127.0.0.1:4602' },
  groups: ['demo'],
});

const validGroups = (): Record<string, unknown> => ({
  version: 1,
  defaults: { schedule: { every: '30d' } },
  groups: [
    {
      id: 'payments',
      name: 'Payments',
      primary: 'us-south',
      duplicates: ['us-east'],
      schedule: { every: '30d', window: '02:00-04:00', timeZone: 'UTC', maxAge: '45d', enabled: true },
    },
    { id: 'ledger', primary: { region: 'us-south' }, duplicates: [{ region: 'us-east' }] },
  ],
});

// ---------------------------------------------------------------- defects

type Doc = Record<string, unknown>;
type Mutation = { what: string; apply: (d: Doc) => void };

/** Sets a value at a path, creating mappings on the way. */
function setAt(d: Doc, path: readonly (string | number)[], v: unknown): void {
  let cur: Record<string | number, unknown> = d;
  for (const p of path.slice(0, -1)) {
    if (cur[p] === null || typeof cur[p] !== 'object') cur[p] = {};
    cur = cur[p] as Record<string | number, unknown>;
  }
  // defineProperty, so that keys such as __proto__ become plain keys of the document
  Object.defineProperty(cur, path[path.length - 1]!, {
    value: v,
    enumerable: true,
    configurable: true,
    writable: true,
  });
}

const mutate = (what: string, path: readonly (string | number)[]) => (v: unknown) => ({
  what: `${what} = ${String(JSON.stringify(v)).slice(0, 60)}`,
  apply: (d: Doc) => setAt(d, path, v),
});

const badUrl = fc.oneof(
  fc.constantFrom(
    'not a url',
    'ftp://x.example',
    'javascript:alert(1)',
    'file:///etc/passwd',
    '127.0.0.1:4601',
    'http//x',
  ),
  traversal,
  injectedValue,
  hugeString(5_000).map((s) => `x${s}`),
);
const badRegion = fc.oneof(
  fc.constantFrom('US-SOUTH', 'us_south', 'constructor', '__proto__', 'toString', 'a'),
  traversal,
);
const unknownKey = fc.oneof(
  fc.constantFrom('constructor', 'toString', '__proto__', 'hasOwnProperty', 'valueOf', 'apiUrl', 'IAM', 'iam '),
  fc.string({ minLength: 1, maxLength: 12 }).map((s) => `x-${s}`),
);

/** A duration beyond 2^53 ms (digits, or digits and a unit). */
const hugeDuration = fc.oneof(
  fc.integer({ min: 17, max: 400 }).map((n) => '9'.repeat(n)),
  fc
    .tuple(fc.integer({ min: 13, max: 60 }), fc.constantFrom('s', 'm', 'h', 'd', 'w'))
    .map(([n, u]) => `${'9'.repeat(n)}${u}`),
);

/** One defect in a config-file document. */
const configDefect: fc.Arbitrary<Mutation> = fc.oneof(
  fc.tuple(unknownKey, junkJson).map(([k, v]) => mutate(`unknown key ${k}`, [k])(v)),
  fc
    .tuple(fc.constantFrom('iam', 'api', 'cloudant', 'escrow'), unknownKey)
    .map(([s, k]) => mutate(`unknown ${s}.${k}`, [s, k])('x')),
  fc
    .tuple(
      fc.constantFrom('iam', 'api', 'cloudant', 'escrow', 'keyProtect'),
      notAnObject.filter((v) => v !== null),
    )
    .map(([s, v]) => mutate(s, [s])(v)),
  fc
    .tuple(
      fc.constantFrom(['iam', 'url'], ['api', 'url'], ['cloudant', 'url'], ['keyProtect', 'us-south', 'url']),
      badUrl,
    )
    .map(([p, v]) => mutate(p.join('.'), p)(v)),
  fc
    .tuple(
      fc.constantFrom(
        ['iam', 'url'],
        ['iam', 'apiKey'],
        ['api', 'url'],
        ['cloudant', 'apiKey'],
        ['escrow', 'crn'],
        ['keyProtect', 'us-east', 'instanceId'],
      ),
      notAString.filter((v) => v !== null),
    )
    .map(([p, v]) => mutate(p.join('.'), p)(v)),
  fc
    .tuple(badRegion, fc.boolean())
    .map(([r, full]) =>
      mutate(`keyProtect.${r}`, ['keyProtect', r])(full ? { url: 'http://x', instanceId: US_SOUTH } : 'x'),
    ),
  fc
    .oneof(fc.constantFrom('not-a-guid', US_SOUTH.toUpperCase().replace('1', 'G'), ''), traversal)
    .map((v) => mutate('keyProtect.us-east.instanceId', ['keyProtect', 'us-east', 'instanceId'])(v || ' ')),
  fc.constant({
    what: 'region without instanceId',
    apply: (d: Doc) => setAt(d, ['keyProtect', 'eu-de'], { url: 'http://x' }),
  }),
  // A region with an instance and no url is valid: it gets Key Protect's public endpoint, as `ibmcloud` users expect.
  fc
    .tuple(fc.constantFrom('us-south'), unknownKey)
    .map(([r, k]) => mutate(`keyProtect.${r}.${k}`, ['keyProtect', r, k])('x')),
  forgedCrn(MANAGED)
    // '' means "not set" for every configuration value (as for instanceId above), so it is not a defect here
    .filter((c) => c !== '')
    .filter(
      (c) =>
        !/^crn:v1:[a-z-]+:[a-z-]+:kms:[a-z]{2}-[a-z]{2,6}:a\/[0-9a-zA-Z]+:[0-9a-f-]{36}:key:[0-9a-f-]{36}$/i.test(c),
    )
    .map(mutate('escrow.crn', ['escrow', 'crn'])),
  fc
    .oneof(
      fc.constantFrom('soon', '-1h', '1y', '1e400', 'PT1H', ''),
      hugeDuration,
      fc.constant(-5),
      fc.constant(true),
      fc.constant([1]),
    )
    .map((v) => mutate('rotationMinInterval', ['rotationMinInterval'])(v === '' ? {} : v)),
);

/** One defect in a groups-file document. */
const groupsDefect: fc.Arbitrary<Mutation> = fc.oneof(
  invalidGroupId.map(mutate('groups[0].id', ['groups', 0, 'id'])),
  notAString.map(mutate('groups[0].id', ['groups', 0, 'id'])),
  fc
    .tuple(
      fc.constantFrom([], ['groups', 0], ['groups', 0, 'schedule'], ['groups', 1, 'primary'], ['defaults']),
      unknownKey,
    )
    .map(([p, k]) => mutate(`unknown ${[...p, k].join('.')}`, [...p, k])('x')),
  fc
    .oneof(
      fc.constantFrom('abc', '0', '5m', '59m', '-1d', '1h30x'),
      hugeDuration,
      notAString.filter((v) => typeof v !== 'number'),
    )
    .map(mutate('schedule.every', ['groups', 0, 'schedule', 'every'])),
  fc
    .oneof(fc.constantFrom('* * * * *', '*/5 * * * *', 'not cron', '61 * * * *', '0 0 31 2 *'), notAString)
    .map((v) => ({
      what: `cron ${JSON.stringify(v)}`,
      apply: (d: Doc) => setAt(d, ['groups', 0, 'schedule'], { cron: v }),
    })),
  // the whole schedule, so that no other mutation can turn it back into a valid one
  fc.constant({
    what: 'every and cron',
    apply: (d: Doc) => setAt(d, ['groups', 0, 'schedule'], { every: '30d', cron: '0 3 * * 0' }),
  }),
  fc
    .oneof(
      fc.constantFrom('25:00-26:00', '02:00-02:00', '2-4', 'always'),
      notAString.filter((v) => v !== null && !(typeof v === 'object' && !Array.isArray(v))),
    )
    .map(mutate('schedule.window', ['groups', 0, 'schedule', 'window'])),
  fc
    .oneof(fc.constantFrom('Mars/Olympus', 'UTC+25', '../etc/localtime'), notAString)
    .map(mutate('schedule.timeZone', ['groups', 0, 'schedule', 'timeZone'])),
  fc.constantFrom('1d', '29d', 'never').map(mutate('schedule.maxAge', ['groups', 0, 'schedule', 'maxAge'])),
  fc
    .oneof(fc.constantFrom('yes', 'true', 1, 'on'), fc.constant(null))
    .map(mutate('schedule.enabled', ['groups', 0, 'schedule', 'enabled'])),
  fc
    .oneof(
      fc.constant([]),
      fc.constant('us-east'),
      fc.array(fc.oneof(junkJson, badRegion), { minLength: 1, maxLength: 3 }),
    )
    .map(mutate('duplicates', ['groups', 0, 'duplicates'])),
  fc.oneof(badRegion, notAString, fc.constant('eu-gb')).map(mutate('primary', ['groups', 0, 'primary'])),
  forgedCrn(MANAGED).map((c) => mutate('primary.crn', ['groups', 1, 'primary'])({ crn: `${c}:x` })),
  fc
    .oneof(fc.constantFrom('not-a-uuid', '../../keys'), notAString)
    .map(mutate('member keyId', ['groups', 1, 'duplicates', 0, 'keyId'])),
  fc.constant({ what: 'duplicate ids', apply: (d: Doc) => setAt(d, ['groups', 1, 'id'], 'payments') }),
  fc.oneof(fc.constant(2), fc.constant('1'), fc.constant(0)).map(mutate('version', ['version'])),
  fc
    .oneof(
      fc.constant([]),
      notAnObject.filter((v) => !Array.isArray(v) || v.length === 0),
    )
    .map(mutate('groups', ['groups'])),
  fc.oneof(fc.constantFrom('x', 5), fc.constant({ schedule: 'weekly' })).map(mutate('defaults', ['defaults'])),
  fc.oneof(fc.constant('not-a-crn'), fc.constant({ crn: 5 })).map(mutate('escrow', ['groups', 0, 'escrow'])),
  hugeString(100_000).map((s) =>
    mutate('name (huge) + bad id', ['groups', 0])({
      id: `Bad${s.slice(0, 10)}`,
      name: s,
      primary: 'us-south',
      duplicates: ['us-east'],
    }),
  ),
  oddUnicode.map((u) => mutate('unicode id', ['groups', 0, 'id'])(`é${u}`)),
);

/** YAML text that the parser refuses (or that builds too many aliases). */
const brokenYaml = fc.constantFrom(
  'iam: [\n',
  "iam: {url: 'unterminated}\n",
  'iam:\n\turl: x\n',
  'a: b: c\n',
  'iam: {}\niam: {}\n',
  '- a\nb: c\n',
  'key: "\\q"\n',
  '{{}}',
  '&a [*a]',
  `a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [${Array(60).fill('*c').join(',')}]\n`,
);

/** Files/directories a path may wrongly point at, relative to the case directory. */
const badPath = fc.oneof(
  fc.constantFrom('.', '..', '/', '/etc', 'missing.yaml', '../../../../nope/x.yaml', '/etc/passwd', 'sub/'),
  traversal.map((t) => `${t}/lockstep.yaml`),
  injectedValue,
);

// ---------------------------------------------------------------- cases

interface CliCase {
  kind: string;
  argv: string[];
  env: Record<string, string>;
  files: Record<string, string>;
}

const FILE = 'lockstep.config.yaml';
const DEV = '.lockstep/dev.json';
const asYaml = (d: Doc) => stringify(d, { aliasDuplicateObjects: false });

function cliCase(): fc.Arbitrary<CliCase> {
  const configFile = fc.oneof(
    {
      arbitrary: fc.array(configDefect, { minLength: 1, maxLength: 3 }).map((ms) => ({
        kind: `config file: ${ms.map((m) => m.what).join(', ')}`,
        text: apply(validConfig(), ms, asYaml),
      })),
      weight: 6,
    },
    {
      arbitrary: fc.array(configDefect, { minLength: 1, maxLength: 2 }).map((ms) => ({
        kind: `config file (JSON): ${ms.map((m) => m.what).join(', ')}`,
        text: apply(validConfig(), ms, (d) => JSON.stringify(d)),
      })),
      weight: 2,
    },
    { arbitrary: brokenYaml.map((text) => ({ kind: 'config file: broken YAML', text })), weight: 2 },
    {
      arbitrary: malformedJsonText
        .filter((t) => (t.trim().startsWith('{') || t.trim().startsWith('[')) && !yamlIsEmptyMapping(t))
        .map((text) => ({ kind: 'config file: malformed JSON', text })),
      weight: 1,
    },
    {
      arbitrary: fc
        .oneof(
          fc.constantFrom('42', '"text"', '- a\n- b\n', 'true'),
          fc.constant(`${'# pad\n'.repeat(30_000)}- huge\n`),
        )
        .map((text) => ({ kind: 'config file: not a mapping', text })),
      weight: 1,
    },
  );
  const devFile = fc.oneof(
    malformedJsonText.map((text) => ({ kind: 'dev.json: malformed JSON', text })),
    notAnObject.map((v) => ({ kind: 'dev.json: not an object', text: JSON.stringify(v) })),
    fc
      .tuple(
        fc.constantFrom<string[]>(
          ['iam', 'url'],
          ['api', 'url'],
          ['cloudant', 'url'],
          ['keyProtect', 'us-south', 'url'],
          ['keyProtect', 'us-south', 'instanceId'],
        ),
        fc.oneof(
          notAString.filter((v) => v !== null && v !== ''),
          badUrl,
        ),
      )
      .map(([p, v]) => {
        const d = validDev();
        setAt(d, p, v);
        return { kind: `dev.json: ${p.join('.')}`, text: JSON.stringify(d) };
      }),
    fc
      .array(fc.oneof(junkJson, invalidGroupId), { minLength: 1, maxLength: 3 })
      .filter((g) => g.some((x) => typeof x !== 'string' || !/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/.test(x)))
      .map((groups) => ({ kind: 'dev.json: bad groups', text: JSON.stringify({ ...validDev(), groups }) })),
  );
  const envDefect = fc.oneof(
    fc
      .tuple(
        fc.constantFrom('LOCKSTEP_KP_ENDPOINTS', 'LOCKSTEP_KP_INSTANCES'),
        fc.oneof(
          malformedJsonText.filter((t) => t.trim().startsWith('{')),
          fc.constantFrom(
            '{"us-south": 5}',
            '{"us-south": null}',
            'us-south',
            '=x',
            'US=x,y',
            '{"__proto__": "x"}',
            '{"constructor": "x"}',
          ),
        ),
      )
      .map(([k, v]) => ({ [k]: v })),
    fc
      .tuple(fc.constantFrom('LOCKSTEP_API_URL', 'LOCKSTEP_IAM_URL', 'LOCKSTEP_CLOUDANT_URL', 'CLOUDANT_URL'), badUrl)
      .map(([k, v]) => ({ [k]: v })),
    fc
      .oneof(
        fc.constantFrom('soon', '-1h', '1e400', 'PT1H', 'Infinity'),
        hugeDuration,
        hugeString(10_000).map((s) => `1${s}`),
      )
      .map((v) => ({ LOCKSTEP_ROTATION_MIN_INTERVAL: v })),
    forgedCrn(MANAGED)
      .filter(
        (c) =>
          c.trim() !== '' &&
          !/^crn:v1:[a-z-]+:[a-z-]+:kms:[a-z]{2}-[a-z]{2,6}:a\/[0-9a-zA-Z]+:[0-9a-f-]{36}:key:[0-9a-f-]{36}$/i.test(c),
      )
      .map((v) => ({ LOCKSTEP_ESCROW_KEY: v })),
    badPath.map((p) => ({ LOCKSTEP_CONFIG: p })),
  );
  const flagDefect = fc.oneof(
    fc.tuple(fc.constantFrom('--api-url', '--iam-url', '--cloudant-url'), badUrl).map(([f, v]) => [f, v]),
    fc
      .oneof(fc.constantFrom('x', 'us-south', '=http://x', 'us-south=ftp://x', 'constructor=http://x'), traversal)
      .map((v) => ['--kp-endpoint', v]),
    fc
      .oneof(fc.constantFrom('us-south=nope', 'us-south', 'us-south=../../x'), injectedValue)
      .map((v) => ['--kp-instance', v]),
    fc.constantFrom('admin', 'root', '', 'OPERATOR').map((v) => ['--role', v]),
    forgedCrn(MANAGED)
      .filter(
        (c) =>
          c.trim() !== '' &&
          !c.startsWith('-') &&
          !/^crn:v1:[a-z-]+:[a-z-]+:kms:[a-z]{2}-[a-z]{2,6}:a\/[0-9a-zA-Z]+:[0-9a-f-]{36}:key:[0-9a-f-]{36}$/i.test(c),
      )
      .map((v) => ['--escrow-key', v]),
    badPath.filter((p) => !p.startsWith('-')).map((p) => ['--config', p]),
    fc.constantFrom('.', '/', '..').map((p) => ['--dev-file', p]),
  );
  const configCase: fc.Arbitrary<CliCase> = fc.oneof(
    {
      arbitrary: configFile.map((f) => ({
        kind: f.kind,
        argv: ['config', '--json'],
        env: {},
        files: { [FILE]: f.text },
      })),
      weight: 5,
    },
    {
      arbitrary: devFile.map((f) => ({ kind: f.kind, argv: ['config', '--json'], env: {}, files: { [DEV]: f.text } })),
      weight: 2,
    },
    {
      arbitrary: fc.tuple(envDefect, fc.boolean()).map(([env, withFile]) => ({
        kind: `env ${Object.keys(env).join(',')}`,
        argv: ['config', '--json'],
        env,
        files: (withFile ? { [FILE]: asYaml(validConfig()) } : {}) as Record<string, string>,
      })),
      weight: 3,
    },
    {
      arbitrary: fc.tuple(flagDefect, fc.boolean()).map(([flag, withDev]) => ({
        kind: `flag ${flag[0]}`,
        argv: ['--json', ...flag, 'config'],
        env: {},
        files: (withDev ? { [DEV]: JSON.stringify(validDev()) } : {}) as Record<string, string>,
      })),
      weight: 3,
    },
  );
  const applyCase: fc.Arbitrary<CliCase> = fc.oneof(
    {
      arbitrary: fc.tuple(fc.array(groupsDefect, { minLength: 1, maxLength: 3 }), fc.boolean()).map(([ms, json]) => ({
        kind: `groups file: ${ms.map((m) => m.what).join(', ')}`,
        argv: ['group', 'apply', '-f', 'groups.yaml', '--json'],
        env: {},
        files: {
          [FILE]: asYaml(validConfig()),
          'groups.yaml': apply(validGroups(), ms, json ? (d) => JSON.stringify(d) : asYaml),
        },
      })),
      weight: 6,
    },
    {
      arbitrary: brokenYaml.map((text) => ({
        kind: 'groups file: broken YAML',
        argv: ['group', 'apply', '-f', 'groups.yaml', '--json'],
        env: {},
        files: { [FILE]: asYaml(validConfig()), 'groups.yaml': text },
      })),
      weight: 2,
    },
    {
      arbitrary: badPath
        .filter((p) => !p.startsWith('-'))
        .map((p) => ({
          kind: `groups file path ${p}`,
          argv: ['group', 'apply', '-f', p, '--dry-run', '--json'],
          env: {},
          files: { [FILE]: asYaml(validConfig()) },
        })),
      weight: 2,
    },
    {
      arbitrary: configFile.map((f) => ({
        kind: `apply with ${f.kind}`,
        argv: ['group', 'apply', '-f', 'groups.yaml', '--json'],
        env: {},
        files: { [FILE]: f.text, 'groups.yaml': asYaml(validGroups()) },
      })),
      weight: 1,
    },
  );
  return fc.oneof(configCase, applyCase);
}

/** Malformed JSON can be valid YAML; an empty mapping (or nothing) is a valid, empty configuration, not a defect. */
function yamlIsEmptyMapping(text: string): boolean {
  try {
    const v: unknown = parse(text);
    return v === null || v === undefined || (typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length === 0);
  } catch {
    return false;
  }
}

function apply(d: Doc, ms: Mutation[], render: (d: Doc) => string): string {
  for (const m of ms) m.apply(d);
  return render(d);
}

// ---------------------------------------------------------------- the invariant

const MAX_MESSAGE_CHARS = 4_096;

async function runCase(c: CliCase): Promise<CaseVerdict> {
  const dir = mkdtempSync(join(root, 'case-'));
  try {
    for (const [name, text] of Object.entries(c.files)) {
      mkdirSync(dirname(join(dir, name)), { recursive: true });
      writeFileSync(join(dir, name), text);
    }
    mkdirSync(join(dir, 'sub'), { recursive: true });
    const before = snapshotDir(dir);
    const out: string[] = [];
    const err: string[] = [];
    const fetches: string[] = [];
    let code: number;
    try {
      code = await runCli(c.argv, {
        stdout: (s) => out.push(s),
        stderr: (s) => err.push(s),
        env: c.env,
        cwd: dir,
        isTty: false,
        interrupted: new Promise<string>(() => undefined),
        fetch: (async (url: string | URL | Request) => {
          fetches.push(String(url));
          throw new Error('no network in the CLI fuzz');
        }) as typeof fetch,
      });
    } catch (e) {
      return [`runCli rejected: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`];
    }
    const problems: string[] = [];
    if (code !== 2) problems.push(`exit ${code}, expected 2: ${err.join('').slice(0, 200)}`);
    if (out.join('') !== '') problems.push(`wrote to stdout: ${out.join('').slice(0, 80)}`);
    if (fetches.length) problems.push(`called the network: ${fetches[0]}`);
    const stderr = err.join('').trim();
    // commander's own usage errors (bad --role) are plain text; everything else is one JSON error document
    if (!stderr.startsWith('error: ') || code !== 2) {
      try {
        const e = (JSON.parse(stderr.split('\n').at(-1) ?? '') as { error?: { message?: unknown; exitCode?: unknown } })
          .error;
        if (typeof e?.message !== 'string' || e.message.length < 10) problems.push('no error message');
        else if (/\n\s+at /.test(e.message)) problems.push('the message is a stack trace');
        else if (e.message.length > MAX_MESSAGE_CHARS)
          problems.push(`the message is ${e.message.length} characters long`);
        if (e?.exitCode !== code)
          problems.push(`JSON exitCode ${String(e?.exitCode)} differs from the exit code ${code}`);
      } catch {
        problems.push(`stderr is not a JSON error: ${stderr.slice(0, 120)}`);
      }
    }
    problems.push(...diffDir(before, snapshotDir(dir)));
    return problems;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** resolveConfig alone: only a CliError with exit 2 may escape, for every layer's defect. */
function resolveOnly(c: CliCase): CaseVerdict {
  if (c.argv[0] === 'group' || !c.argv.includes('config')) return [];
  const flags: Record<string, unknown> = {};
  const argv = c.argv.filter((a) => a !== '--json' && a !== 'config');
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i]!.replace(/^--/, '').replace(/-([a-z])/g, (_m, ch: string) => ch.toUpperCase());
    flags[name] = name === 'kpEndpoint' || name === 'kpInstance' ? [argv[i + 1]] : argv[i + 1];
  }
  if (flags.role !== undefined) return []; // commander refuses --role choices before configuration is read
  try {
    resolveConfig({
      flags,
      env: c.env,
      cwd: '/fuzz',
      readFile: (p) => {
        const rel = p.replace(/^\/fuzz\//, '');
        if (rel in c.files) return c.files[rel];
        if (p === '/' || p === '/fuzz' || p === '/etc' || p.endsWith('/sub'))
          throw Object.assign(new Error(`EISDIR: illegal operation on a directory, read`), { code: 'EISDIR' });
        return undefined;
      },
    });
    return ['resolveConfig accepted a defective configuration'];
  } catch (e) {
    if (e instanceof CliError && e.exitCode === 2) return [];
    return [`resolveConfig threw ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`];
  }
}

// ---------------------------------------------------------------- the scenario

/** Counterexamples the fuzz found, tried first on every run (regression tests of the fixes). */
const ALIAS_BOMB = `a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [${Array(60).fill('*c').join(',')}]\n`;
const regressions: CliCase[] = [
  { kind: 'config file: alias bomb', argv: ['config', '--json'], env: {}, files: { [FILE]: ALIAS_BOMB } },
  {
    kind: 'groups file: alias bomb',
    argv: ['group', 'apply', '-f', 'g.yaml', '--json'],
    env: {},
    files: { 'g.yaml': ALIAS_BOMB },
  },
  { kind: 'flag --dev-file: a directory', argv: ['--json', '--dev-file', '/', 'config'], env: {}, files: {} },
  { kind: 'env LOCKSTEP_CONFIG: a directory', argv: ['config', '--json'], env: { LOCKSTEP_CONFIG: 'sub' }, files: {} },
  {
    kind: 'flag --api-url: huge',
    argv: ['--json', '--api-url', `x${'C2'.repeat(30_000)}`, 'config'],
    env: {},
    files: {},
  },
  {
    kind: 'flag --api-url: huge, full of quotes',
    argv: ['--json', '--api-url', `x${'a"'.repeat(20_000)}`, 'config'],
    env: {},
    files: {},
  },
  {
    kind: 'config file: unknown key constructor',
    argv: ['config', '--json'],
    env: {},
    files: { [FILE]: 'constructor: {a: 1}\n' },
  },
  {
    kind: 'config file: unknown key toString',
    argv: ['config', '--json'],
    env: {},
    files: { [FILE]: 'toString:\n  url: x\n' },
  },
];

describe('bad input: CLI configuration and groups files (fuzz)', () => {
  it(
    'exits 2 with a clear error, writes nothing, never throws',
    async () => {
      const tally = createTally();
      await fuzz(
        tally,
        'cli',
        cliCase(),
        async (c) => [...(await runCase(c)), ...resolveOnly(c)].map((p) => `${c.kind}: ${p}`),
        {
          numRuns: fuzzRuns(250),
          examples: regressions,
        },
      );
      // parseGroupsFile alone never throws and reports an error for every defect
      await fuzz(
        tally,
        'groups',
        fc.oneof(
          fc.array(groupsDefect, { minLength: 1, maxLength: 3 }).map((ms) => apply(validGroups(), ms, asYaml)),
          brokenYaml,
          malformedJsonText,
          fc.string({ unit: 'binary', maxLength: 200 }),
        ),
        async (text) => {
          try {
            const r = parseGroupsFile(text, { knownRegions: ['us-south', 'us-east'] });
            const errors = r.issues.filter((i) => i.severity === 'error');
            if (r.ok || errors.length === 0) return ['accepted a defective groups file'];
            return errors.some((i) => typeof i.message !== 'string' || i.message.length < 5)
              ? ['an issue without a message']
              : [];
          } catch (e) {
            return [`parseGroupsFile threw ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`];
          }
        },
        { numRuns: fuzzRuns(150) },
      );
      const result = recordFuzzRow(
        tally,
        crashes,
        'bad input: CLI config and groups file',
        `runCli (flags, env, config file, dev.json, group apply -f) in a scratch dir: exit 2, JSON error, no write, no network; resolveConfig/parseGroupsFile direct`,
      );
      expect(result.violations, result.examples?.join('\n')).toBe(0);
    },
    scale({ bounded: 120_000, full: 900_000, soak: 7_200_000 }),
  );
});
