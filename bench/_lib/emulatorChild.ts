/**
 * Bench only: the local IAM + Key Protect emulator in a process of its own (`startBenchStack({ emulatorProcess:
 * 'child' })`), so its server work (RSA-OAEP decrypt of a secure import, AES, JSON) runs on its own event loop, as
 * real Key Protect's runs on its own servers, not on the event loop of the code under test.
 *
 *   node --import tsx bench/_lib/emulatorChild.ts '{"regions":["us-south"],"instancesPerRegion":1}'
 *
 * Prints one JSON line (region URLs and instances, admin URL, IAM URL, the API keys the bench uses) and runs until
 * its stdin closes (the parent closed it, or died) or it gets SIGTERM/SIGINT.
 */
import { startEmulatorStack } from '../../src/local/kp-emulator/index.js';
import { installRsaKeyCache } from './common.js';

export interface EmulatorChildInfo {
  pid: number;
  regions: Record<string, { url: string; instances: string[] }>;
  adminUrl: string;
  iamUrl: string;
  apiKeys: { lockstep: string; operator: string };
  cachedRsaPairs: number;
}

const opts = JSON.parse(process.argv[2] ?? '{}') as { regions: string[]; instancesPerRegion: number };
// installRsaKeyCache patches node:crypto in this process: it must run here, before the first import token.
const cachedRsaPairs = await installRsaKeyCache(3);
// No startTimeMs: the emulator clock starts at the wall clock (offset 0), which the parent mirrors.
const emu = await startEmulatorStack({
  regions: opts.regions,
  instancesPerRegion: opts.instancesPerRegion,
  tokenKeyPoolSize: 4,
  prewarmTokenKeys: true,
});
let closing = false;
const shutdown = () => {
  if (closing) return;
  closing = true;
  emu.close().finally(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
};
process.stdin.on('end', shutdown);
process.stdin.on('close', shutdown);
process.stdin.on('error', shutdown);
process.stdin.resume();
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
const info: EmulatorChildInfo = {
  pid: process.pid,
  regions: Object.fromEntries(
    opts.regions.map((r) => [r, { url: emu.kp.regions[r]!.url, instances: [...emu.kp.regions[r]!.instances] }]),
  ),
  adminUrl: emu.kp.adminUrl,
  iamUrl: emu.iam.url,
  apiKeys: { lockstep: emu.iam.apiKeyFor('lockstep'), operator: emu.iam.apiKeyFor('operator') },
  cachedRsaPairs,
};
process.stdout.write(`${JSON.stringify(info)}\n`);
