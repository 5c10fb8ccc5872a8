import { asRegionId } from '../../core/index.js';
import { startEmulatorStack } from '../../local/kp-emulator/index.js';
import type { CliContext } from '../context.js';
import { usageError } from '../exitCodes.js';
import { renderTable } from '../output.js';

/**
 * `lockstep emulator`: local IAM plus the Key Protect emulator, nothing else. Prints where each endpoint listens and
 * which API keys exist; Ctrl-C stops both.
 */
export async function emulator(ctx: CliContext, opts: { regions: string[]; port: number }): Promise<number> {
  if (opts.regions.length === 0)
    throw usageError('flag --regions: give at least one region', 'e.g. --regions us-south,us-east,eu-de');
  for (const r of opts.regions) {
    try {
      asRegionId(r);
    } catch {
      throw usageError(`flag --regions: "${r}" is not a region`, 'regions look like us-south, us-east, eu-de');
    }
  }
  if (new Set(opts.regions).size !== opts.regions.length) throw usageError('flag --regions: a region is listed twice');
  const base = opts.port;
  const stack = await startEmulatorStack({
    regions: opts.regions,
    ...(base
      ? {
          iamOptions: { port: base },
          ports: Object.fromEntries(opts.regions.map((r, i) => [r, base + 1 + i])),
          adminPort: base + 1 + opts.regions.length,
        }
      : {}),
  });
  try {
    const regions = opts.regions.map((r) => stack.kp.regions[r]!);
    const identities = stack.iam.identities;
    ctx.out.result(
      {
        iam: { url: stack.iam.url, jwksUrl: stack.iam.jwksUrl, accountId: stack.iam.accountId },
        keyProtect: Object.fromEntries(
          regions.map((r) => [r.region, { url: r.url, privateUrl: r.privateUrl, instanceIds: r.instances }]),
        ),
        adminUrl: stack.kp.adminUrl,
        apiKeys: Object.fromEntries(identities.map((i) => [i.name, i.apiKey])),
        identities: identities.map((i) => ({ name: i.name, kind: i.kind, iamId: i.iamId })),
      },
      () =>
        [
          ctx.out.bold('Key Protect emulator and local IAM are running (Ctrl-C stops them).'),
          '',
          `IAM         ${stack.iam.url}   (token: POST /identity/token, JWKS: ${stack.iam.jwksUrl})`,
          `account     ${stack.iam.accountId}`,
          `admin       ${stack.kp.adminUrl}/__emulator/   (faults, clock, rules, events, access, snapshots)`,
          '',
          renderTable(regions, [
            { header: 'REGION', value: (r) => r.region },
            { header: 'URL (serviceUrl for the SDK)', value: (r) => r.url },
            { header: 'PRIVATE URL', value: (r) => r.privateUrl },
            { header: 'INSTANCE (Bluemix-Instance)', value: (r) => r.instances.join(',') },
          ]),
          '',
          renderTable(identities, [
            { header: 'IDENTITY', value: (i) => i.name },
            { header: 'KIND', value: (i) => i.kind },
            { header: 'API KEY (local only)', value: (i) => i.apiKey },
          ]),
          '',
          'Try:',
          `  curl -s -X POST ${stack.iam.url}/identity/token -d grant_type=urn:ibm:params:oauth:grant-type:apikey -d apikey=${identities.find((i) => i.name === 'operator')?.apiKey ?? '<key>'}`,
        ].join('\n'),
    );
    // --json prints the JSON document exactly once, so a script can read it and keep the emulator running
    const signal = await ctx.io.interrupted;
    ctx.out.progress(`\n${signal}: stopping the emulator…`);
  } finally {
    await stack.close();
  }
  ctx.out.progress('stopped.');
  return 0;
}
