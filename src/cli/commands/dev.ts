import { relative } from 'node:path';
import { createJsonLogger } from '../../app/index.js';
import { startDevStack } from '../../local/dev/index.js';
import { DEFAULT_DEV_FILE } from '../config.js';
import type { CliContext } from '../context.js';
import { formatDuration } from '../duration.js';
import type { DevOptions } from '../program.js';
import { refuseSdkHttpTracing } from '../runtime.js';

/**
 * `lockstep dev` (`npm start`): starts the local stack, prints a short guide, then each rotation step as it happens
 * until Ctrl-C, which stops everything and frees every port.
 */
export async function dev(ctx: CliContext, opts: DevOptions): Promise<number> {
  refuseSdkHttpTracing(ctx); // the stack's functions and seeding talk to the emulator through the IBM SDK
  const out = ctx.out;
  const startedMs = Date.now();
  const devFile = ctx.flags.devFile ?? ctx.io.env.LOCKSTEP_DEV_FILE ?? DEFAULT_DEV_FILE;
  const say = (line: string) => ctx.io.stderr(`${line}\n`);
  say(out.bold('lockstep dev — starting the local stack'));
  say(
    out.yellow(
      `! demo timing: the emulator's one-rotation-per-key-per-hour rule is shortened to ${formatDuration(opts.rotationMinIntervalMs)} ` +
        `(real Key Protect: 1h); the demo group rotates every ${formatDuration(opts.demoEveryMs)}.`,
    ),
  );
  const logLevel = ctx.io.env.LOCKSTEP_LOG_LEVEL;
  const stack = await startDevStack({
    dataDir: opts.dataDir,
    fresh: opts.fresh,
    devFile,
    portBase: opts.portBase,
    rotationMinIntervalMs: opts.rotationMinIntervalMs,
    demo: opts.demo,
    demoEveryMs: opts.demoEveryMs,
    tickMs: opts.tickMs,
    demoSeed: opts.demoSeed,
    ...(opts.eventsRoute ? { eventsRoute: opts.eventsRoute } : {}),
    print: (line) => say(line.startsWith('✓') ? `${out.green('✓')}${line.slice(1)}` : line),
    ...(logLevel === 'debug' || logLevel === 'info' || logLevel === 'warn' || logLevel === 'error'
      ? { logger: createJsonLogger({ level: logLevel }), functionLogLevel: logLevel }
      : {}),
  });
  const j = stack.devJson;
  const rel = relative(ctx.io.cwd, devFile) || devFile;
  const guide = [
    '',
    out.bold(`Ready in ${formatDuration(Date.now() - startedMs)}.`) + `  Wrote ${rel}.`,
    '',
    ...[
      ['API', `${j.api.url}/v1   (OpenAPI: ${j.api.url}/openapi.json)`],
      ['Timeline page', j.ui.url],
      ['Events', `${j.events.url}   (header ${j.events.tokenHeader}, token in ${rel})`],
      ['IAM', j.iam.url],
      ['Store', j.cloudant.url],
      ...Object.entries(j.keyProtect).map(([r, k]) => [`Key Protect ${r}`, `${k.url}   instance ${k.instanceId}`]),
    ].map(([label, value]) => `  ${String(label).padEnd(22)}${value}`),
    '',
    `  ${'operator API key'.padEnd(22)}${j.iam.apiKeys.operator}`,
    `  ${'auditor API key'.padEnd(22)}${j.iam.apiKeys.auditor}`,
    '',
    `  Groups: ${j.groups.join(', ') || '(none)'}${stack.reused ? '   (data reused; --fresh starts over)' : ''}`,
    '',
    'Try next (in another terminal):',
    '  npx lockstep plan demo              # what a rotation would do, member by member',
    '  npx lockstep rotate demo            # rotate now: duplicates first, primary last, then prove',
    '  npx lockstep audit verify demo      # recompute the hash chain and check the signed checkpoint',
    '  npx lockstep drill demo             # DR drill: every duplicate takes over from the primary (also every 5 min)',
    '  npx tsx examples/app/app.ts         # an application on lockstep/client; examples/app/outage.ts takes us-south down',
    '',
    out.dim('Rotation steps appear below as they happen. Ctrl-C stops everything.'),
    '',
  ];
  if (out.json) ctx.io.stdout(`${JSON.stringify({ ready: true, devFile: rel, ...j }, null, 2)}\n`);
  else for (const l of guide) ctx.io.stdout(`${l}\n`);

  const signal = await ctx.io.interrupted;
  say(`\n${signal}: stopping the local stack…`);
  await stack.close();
  say(out.green('✓ stopped; every port is free.'));
  return 0;
}
