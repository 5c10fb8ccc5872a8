#!/usr/bin/env node
import { runCli } from './cli.js';

/** Entry point of `lockstep` (bin/lockstep.js runs its build in dist/cli, or this file through tsx when stale). */
const interrupted = new Promise<string>((resolve) => {
  const stop = (signal: string) => {
    // a second Ctrl-C while shutting down: stop waiting
    process.once(signal, () => process.exit(130));
    resolve(signal);
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
});

const code = await runCli(process.argv.slice(2), {
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
  env: process.env,
  cwd: process.cwd(),
  isTty: process.stdout.isTTY === true,
  interrupted,
});
process.exitCode = code;
// let stdout drain, then leave even if a library kept a handle open
process.stdout.write('', () => process.exit(code));
