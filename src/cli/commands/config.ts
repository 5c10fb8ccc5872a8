import type { CliContext } from '../context.js';
import { renderTable } from '../output.js';

/** `lockstep config`: the resolved configuration, each value with its source; secrets are shown as [REDACTED]. */
export async function showConfig(ctx: CliContext): Promise<number> {
  const { config, sources, files } = ctx.config();
  const rows: Array<{ key: string; value: unknown; source: string }> = [];
  const add = (key: string, value: unknown) => {
    if (value !== undefined) rows.push({ key, value, source: sources[key] ?? 'default' });
  };
  add('api.url', config.api.url);
  add('iam.url', config.iam.url);
  add('iam.apiKey', config.iam.apiKey ? '[REDACTED]' : undefined);
  add('cloudant.url', config.cloudant.url);
  add('cloudant.apiKey', config.cloudant.apiKey ? '[REDACTED]' : undefined);
  add('cloudant.username', config.cloudant.username);
  add('cloudant.password', config.cloudant.password ? '[REDACTED]' : undefined);
  for (const [region, r] of Object.entries(config.keyProtect)) {
    add(`keyProtect.${region}.url`, r.url);
    add(`keyProtect.${region}.instanceId`, r.instanceId);
  }
  add('escrow.crn', config.escrow?.crn);
  add('rotationMinIntervalMs', config.rotationMinIntervalMs);
  add('region', config.region);
  if (config.devGroups.length)
    rows.push({ key: 'devGroups', value: config.devGroups.join(','), source: sources.devGroups ?? '' });
  ctx.out.result(
    { files, values: Object.fromEntries(rows.map((r) => [r.key, { value: r.value, source: r.source }])) },
    () =>
      [
        `config file: ${files.config ?? '(none)'}`,
        `dev file:    ${files.dev ?? '(none)'}`,
        '',
        rows.length
          ? renderTable(rows, [
              { header: 'SETTING', value: (r) => r.key },
              { header: 'VALUE', value: (r) => r.value },
              { header: 'SOURCE', value: (r) => r.source },
            ])
          : 'Nothing configured. Start the local stack with `npm start`, or see docs/cli.md.',
      ].join('\n'),
  );
  return 0;
}
