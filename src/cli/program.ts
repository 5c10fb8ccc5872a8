import { Command, CommanderError, Option } from 'commander';
import { groupList, history, status } from './commands/read.js';
import { runRetry, runStop } from './commands/runs.js';
import type { ConfigFlags } from './config.js';
import { settingSourcesHelp } from './config.js';
import type { CliContext, CliIo } from './context.js';
import { createContext } from './context.js';
import { parseDuration } from './duration.js';
import { ExitCode, usageError } from './exitCodes.js';
import { Output } from './output.js';

/** Handlers of the commands that need modules wired elsewhere (kept injectable so tests can replace them). */
export interface CommandHandlers {
  dev(ctx: CliContext, opts: DevOptions): Promise<number>;
  emulator(ctx: CliContext, opts: { regions: string[]; port: number }): Promise<number>;
  groupCreate(ctx: CliContext, id: string, opts: GroupCreateOptions): Promise<number>;
  groupApply(ctx: CliContext, opts: { file: string; dryRun: boolean }): Promise<number>;
  plan(ctx: CliContext, groupId: string): Promise<number>;
  rotate(ctx: CliContext, groupId: string, opts: RotateOptions): Promise<number>;
  verify(ctx: CliContext, groupId: string): Promise<number>;
  auditVerify(ctx: CliContext, groupId: string | undefined, opts: { trustKey?: string[] }): Promise<number>;
  regionAdd(
    ctx: CliContext,
    groupId: string,
    region: string,
    opts: { instance?: string; wait: boolean },
  ): Promise<number>;
  config(ctx: CliContext): Promise<number>;
  /** `lockstep check [group]`: Key Protect access probes. */
  check(ctx: CliContext, groupId: string | undefined): Promise<number>;
}

export interface DevOptions {
  fresh: boolean;
  dataDir: string;
  portBase: number;
  demo: boolean;
  /** Key Protect's 1 h rule, shortened for the demo. */
  rotationMinIntervalMs: number;
  /** How often the demo group rotates. */
  demoEveryMs: number;
  /** How often the cron ticker pings the rotate function. */
  tickMs: number;
  /** How the demo group is seeded (create: the service creates the keys; adopt: import, then adopt). */
  demoSeed: 'create' | 'adopt';
  /** How the emulator's events reach the events function (alert: Cloud Logs alert + Event Notifications relay). */
  eventsRoute?: 'alert' | 'direct';
}

export interface GroupCreateOptions {
  /** Region of the primary; the `region` setting when absent. */
  primary?: string;
  duplicate: string[];
  every?: string;
  cron?: string;
  window?: string;
  timeZone?: string;
  maxAge?: string;
  name?: string;
  description?: string;
  dryRun: boolean;
}

export interface RotateOptions {
  wait: boolean;
  force: boolean;
  reason?: string;
  timeoutMs: number;
}

const collect = (v: string, prev: string[] = []) => [...prev, v];
const duration = (flag: string) => (v: string) => {
  const ms = parseDuration(v);
  if (ms === undefined) throw usageError(`flag ${flag}: "${v}" is not a duration`, 'use e.g. 90s, 2m, 1h or 30d');
  return ms;
};
const integer =
  (flag: string, min = 0) =>
  (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw usageError(`flag ${flag}: "${v}" is not an integer ≥ ${min}`);
    return n;
  };

const HELP_FOOTER = `
Where each setting comes from (highest precedence first; an empty value counts as not set):
${settingSourcesHelp()}
  The config file is --config <file>, else $LOCKSTEP_CONFIG, else ./lockstep.config.yaml; dev.json is
  .lockstep/dev.json (written by \`lockstep dev\`; --dev-file or $LOCKSTEP_DEV_FILE to use another).
Run \`lockstep config\` to see every value and where it came from.

Exit codes:
  0  ok
  1  the operation failed (upstream refused, rotation failed, stack unreachable)
  2  usage or configuration error (nothing was changed)
  3  verification failed (broken audit chain, members out of lockstep)

Output: human tables on stdout; --json (or, as with ibmcloud, --output json / -o json) prints one JSON document on
stdout. Progress, warnings and errors go to stderr (errors as {"error":{...}} with --json).

Docs: docs/cli.md, docs/local-stack.md`;

/**
 * Builds the `lockstep` commander program. `run` receives the handler's exit code.
 */
export function buildProgram(io: CliIo, handlers: CommandHandlers, run: (p: Promise<number>) => void): Command {
  const program = new Command('lockstep');
  let ctx: CliContext | undefined;
  const context = (cmd: Command): CliContext => {
    if (ctx) return ctx;
    const g = cmd.optsWithGlobals() as ConfigFlags & {
      json?: boolean;
      output?: string;
      quiet?: boolean;
      color?: boolean;
    };
    const out = new Output({
      json: g.json === true || g.output === 'json',
      quiet: g.quiet === true,
      color: g.color !== false && io.isTty && !io.env.NO_COLOR && io.env.IBMCLOUD_COLOR?.toLowerCase() !== 'false',
      stdout: io.stdout,
      stderr: io.stderr,
    });
    ctx = createContext(out, io, {
      config: g.config,
      devFile: g.devFile,
      apiUrl: g.apiUrl,
      iamUrl: g.iamUrl,
      apiKey: g.apiKey,
      role: g.role,
      cloudantUrl: g.cloudantUrl,
      kpEndpoint: g.kpEndpoint,
      kpInstance: g.kpInstance,
      escrowKey: g.escrowKey,
    });
    return ctx;
  };
  /** Wraps an action: resolves the context and hands the exit code to `run`. */
  const act =
    <A extends unknown[]>(fn: (c: CliContext, ...args: A) => Promise<number>) =>
    (...args: unknown[]) => {
      const cmd = args[args.length - 1] as Command;
      const c = context(cmd);
      run(
        (async () => {
          try {
            return await fn(c, ...(args.slice(0, -1) as A));
          } catch (err) {
            return c.out.error(err);
          }
        })(),
      );
    };

  program
    .description('Keep IBM Key Protect duplicate root keys in lockstep across regions.')
    .version('0.1.0', '-V, --version')
    .option('--json', 'print one JSON document on stdout (errors as JSON on stderr)')
    .option('-o, --output <format>', 'output format: json (as ibmcloud; same as --json)', (v: string) => {
      if (v.toLowerCase() !== 'json') throw usageError(`flag --output: "${v}" is not supported`, 'use --output json');
      return 'json';
    })
    .option('-q, --quiet', 'no progress output')
    .option('--no-color', 'no ANSI colours (also NO_COLOR=1 or IBMCLOUD_COLOR=false)')
    .option('-c, --config <file>', 'config file (default ./lockstep.config.yaml)')
    .option('--dev-file <file>', 'dev stack description (default .lockstep/dev.json)')
    .option('--api-url <url>', 'lockstep HTTP API base URL')
    .option('--iam-url <url>', 'IAM base URL (token endpoint /identity/token)')
    .option('--api-key <key>', 'IAM API key (prefer LOCKSTEP_API_KEY: flags end up in shell history)')
    .addOption(new Option('--role <role>', 'which dev.json API key to use').choices(['operator', 'auditor']))
    .option('--cloudant-url <url>', 'Cloudant (or the embedded store) URL')
    .option('--kp-endpoint <region=url>', 'Key Protect endpoint of a region (repeatable)', collect)
    .option('--kp-instance <region=guid>', 'Key Protect instance of a region (repeatable)', collect)
    .option('--escrow-key <crn>', 'escrow root key CRN used when creating groups')
    .addHelpText('after', HELP_FOOTER)
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr })
    .exitOverride();

  program
    .command('dev')
    .description('start the local stack: IAM, 3-region Key Protect emulator, store, functions, cron ticker, demo group')
    .option('--fresh', 'wipe the data directory first', false)
    .option('--data-dir <dir>', 'where the store keeps its data', '.lockstep/data')
    .option('--port-base <n>', 'first port of a fixed range (0 = random free ports)', integer('--port-base'), 4600)
    .option('--no-demo', 'do not create the demo group')
    .option(
      '--rotation-min-interval <duration>',
      "the emulator's one-rotation-per-hour rule, shortened",
      duration('--rotation-min-interval'),
      120_000,
    )
    .option('--demo-every <duration>', 'rotation interval of the demo group', duration('--demo-every'), 180_000)
    .option('--tick <duration>', 'cron ticker period', duration('--tick'), 10_000)
    .addOption(
      new Option(
        '--demo-seed <mode>',
        'create: the service creates the demo keys; adopt: import one material, then adopt',
      )
        .choices(['create', 'adopt'])
        .default('create'),
    )
    .addOption(
      new Option(
        '--events <route>',
        'alert: Activity Tracker events reach the events function as Cloud Logs alerts via Event Notifications (as in IBM Cloud); direct: full CADF events',
      )
        .choices(['alert', 'direct'])
        .default('alert'),
    )
    .action(
      act((c, opts: Record<string, unknown>) =>
        handlers.dev(c, {
          fresh: opts.fresh === true,
          dataDir: String(opts.dataDir),
          portBase: opts.portBase as number,
          demo: opts.demo !== false,
          rotationMinIntervalMs: opts.rotationMinInterval as number,
          demoEveryMs: opts.demoEvery as number,
          tickMs: opts.tick as number,
          demoSeed: opts.demoSeed === 'adopt' ? 'adopt' : 'create',
          eventsRoute: opts.events === 'direct' ? 'direct' : 'alert',
        }),
      ),
    );

  program
    .command('emulator')
    .description('start local IAM and the Key Protect emulator only; prints endpoints and API keys; Ctrl-C stops')
    .option('--regions <list>', 'comma-separated regions', 'us-south,us-east,eu-de')
    .option('--port <n>', 'first port (0 = random free ports)', integer('--port'), 0)
    .action(
      act((c, opts: { regions: string; port: number }) =>
        handlers.emulator(c, {
          regions: opts.regions
            .split(',')
            .map((r) => r.trim())
            .filter(Boolean),
          port: opts.port,
        }),
      ),
    );

  const group = program.command('group').description('create, apply and list groups');
  group
    .command('create <groupId>')
    .description('create a group: new keys in each region from one fresh material (generation 1)')
    .option('--primary <region>', 'region of the primary key (default: the region setting, e.g. $IBMCLOUD_REGION)')
    .option('--duplicate <region>', 'region of a duplicate key (repeatable)', collect, [])
    .option('--every <duration>', 'rotate every (e.g. 30d)')
    .option('--cron <expr>', 'rotate on a cron schedule (e.g. "0 3 * * 0")')
    .option('--window <HH:MM-HH:MM>', 'only start rotations inside this daily window')
    .option('--time-zone <tz>', 'time zone of cron and window (default UTC)')
    .option('--max-age <duration>', 'rotate regardless of window once the generation is this old')
    .option('--name <name>', 'display name')
    .option('--description <text>', 'description')
    .option('--dry-run', 'validate and show what would be created', false)
    .action(act((c, id: string, opts: GroupCreateOptions) => handlers.groupCreate(c, id, opts)));
  group
    .command('apply')
    .description('create or update the groups declared in a file (validated before anything is touched)')
    .requiredOption('-f, --file <file>', 'groups file (YAML or JSON), see examples/groups.yaml')
    .option('--dry-run', 'validate and show the changes only', false)
    .action(act((c, opts: { file: string; dryRun: boolean }) => handlers.groupApply(c, opts)));
  group
    .command('list')
    .description('list groups')
    .action(act((c) => groupList(c)));

  program
    .command('plan <groupId>')
    .description('dry run: what a rotation would do now and when each member may next rotate')
    .action(act((c, id: string) => handlers.plan(c, id)));

  program
    .command('rotate <groupId>')
    .description('rotate a group now (stage duplicates, verify, promote primary, prove) and follow its progress')
    .option('--no-wait', 'return as soon as the run is accepted')
    .option('--force', 'rotate even if not due (the 1 h rule still applies)', false)
    .option('--reason <text>', 'recorded in the run and the lineage record')
    .option('--timeout <duration>', 'how long to follow the run', duration('--timeout'), 300_000)
    .action(
      act((c, id: string, opts: { wait: boolean; force: boolean; reason?: string; timeout: number }) =>
        handlers.rotate(c, id, { wait: opts.wait, force: opts.force, reason: opts.reason, timeoutMs: opts.timeout }),
      ),
    );

  const runCmd = program.command('run').description('unblock a group: retry a run now, or stop it safely (operator)');
  runCmd
    .command('retry <runId>')
    .description('re-open an unfinished, failed or stopped run so the next tick advances it at once')
    .option('--reason <text>', 'recorded in the run')
    .action(act((c, id: string, opts: { reason?: string }) => runRetry(c, id, opts)));
  runCmd
    .command('stop <runId>')
    .description('stop a rotation run before its primary is promoted; says what the stop leaves behind')
    .option('--reason <text>', 'recorded in the run')
    .action(act((c, id: string, opts: { reason?: string }) => runStop(c, id, opts)));

  program
    .command('status [groupId]')
    .description('health of all groups, or of one group with its members and active run')
    .action(act((c, id: string | undefined) => status(c, id)));

  program
    .command('verify <groupId>')
    .description('live canary probe: every member unwraps what the others wrap, for every generation still held')
    .action(act((c, id: string) => handlers.verify(c, id)));

  program
    .command('history <groupId>')
    .description('lineage of a group, newest first')
    .option('-n, --limit <n>', 'at most this many generations', integer('--limit', 1), 50)
    .action(act((c, id: string, opts: { limit: number }) => history(c, id, opts)));

  program
    .command('check [groupId]')
    .description(
      'probe every member and escrow key for the Key Protect access lockstep needs; exit 3 if any is missing',
    )
    .action(act((c, id: string | undefined) => handlers.check(c, id)));

  program
    .command('drill [groupId]')
    .description('DR drill: every member unwraps every retained generation, each duplicate takes over from the primary')
    .option('--all', 'drill every group', false)
    .option('--reason <text>', 'recorded in the drill record')
    .option('--schedule <every|off>', 'instead of drilling now: drill the group every <duration> from the rotate tick')
    .action(
      act((c, id: string | undefined, opts: { all: boolean; reason?: string; schedule?: string }) =>
        // loaded on use: the drill command's --schedule talks to the store (SDKs stay off the start path)
        import('./commands/drill.js').then((m) => m.drill(c, id, opts)),
      ),
    );

  const audit = program.command('audit').description('auditor tools');
  audit
    .command('verify [groupId]')
    .description('download the lineage and verify the hash chain and signed checkpoints locally (exit 3 if broken)')
    .option(
      '--trust-key <pem-file>',
      'pin a checkpoint public key (repeatable); default: the keys the API publishes',
      collect,
    )
    .action(act((c, id: string | undefined, opts: { trustKey?: string[] }) => handlers.auditVerify(c, id, opts)));

  const region = program.command('region').description('regions of a group');
  region
    .command('add <groupId> <region>')
    .description('add a duplicate in a new region: replays every escrowed generation (one per allowed interval)')
    .option('--instance <guid>', 'Key Protect instance in that region (default: the configured one)')
    .option('--no-wait', 'return once the run is started')
    .action(
      act((c, id: string, r: string, opts: { instance?: string; wait: boolean }) => handlers.regionAdd(c, id, r, opts)),
    );

  program
    .command('config')
    .description('show the resolved configuration and where each value came from (secrets redacted)')
    .action(act((c) => handlers.config(c)));

  return program;
}

/** Maps a commander error to an exit code: help/version are fine, everything else is a usage error. */
export function commanderExitCode(err: CommanderError): number {
  return err.exitCode === 0 ? ExitCode.OK : ExitCode.USAGE;
}

export { CommanderError };
