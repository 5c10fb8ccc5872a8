/**
 * The plugin's configuration surface (validated by Serverless through `defineProvider`) and the pure mapping from a
 * function's configuration to a Code Engine v2 function body and to cron subscription commands.
 */

/** `provider.name` in serverless.yml. */
export const PROVIDER_NAME = 'ibm-code-engine';
export const RUNTIMES = ['nodejs-20', 'nodejs-22', 'nodejs-24'] as const;
/** Default `?version=` of the Code Engine API (its newest behaviour change). */
export const DEFAULT_API_VERSION = '2025-07-10';
/** Inline code limit, base64 data URL included. */
export const INLINE_LIMIT_BYTES = 100 * 1024;

export interface ScheduleEvent {
  cron: string;
  timeZone?: string;
  data?: unknown;
  enabled?: boolean;
}

export interface ProviderConfig {
  name: string;
  region?: string;
  projectId?: string;
  runtime?: (typeof RUNTIMES)[number];
  apiVersion?: string;
  /** Override of `https://api.<region>.codeengine.cloud.ibm.com/v2` (the local stand-in in tests). */
  apiEndpoint?: string;
  /** Override of `https://iam.cloud.ibm.com` (the local IAM). */
  iamEndpoint?: string;
  trustedProfile?: string;
  environment?: Record<string, string | number | boolean>;
  /** Code Engine secrets whose keys all become env variables (`secret_full_reference`). */
  secrets?: string[];
  /** Where bundles over the inline limit are published (`cr://<image>:<fn>-<hash>`). */
  codeBundle?: { image: string; registrySecret?: string };
  /** Cron subscriptions: `run` the ibmcloud CLI, `print` the commands, or `auto` (run when the CLI is installed). */
  subscriptions?: 'auto' | 'run' | 'print';
  stage?: string;
}

export interface FunctionConfig {
  name?: string;
  handler: string;
  memory?: string;
  cpu?: string;
  maxExecutionTime?: number;
  scaleDownDelay?: number;
  concurrency?: number;
  visibility?: 'public' | 'private' | 'project';
  environment?: Record<string, string | number | boolean>;
  events?: Array<{ schedule?: ScheduleEvent }>;
  package?: { artifact?: string };
}

/** JSON schemas handed to `configSchemaHandler.defineProvider` (it replaces the function schema: list everything). */
export const providerSchema = {
  provider: {
    properties: {
      region: { type: 'string', pattern: '^[a-z]{2}-[a-z]{2,6}$' },
      projectId: { type: 'string', minLength: 1 },
      runtime: { enum: [...RUNTIMES] },
      apiVersion: { type: 'string', pattern: '^\\d{4}-\\d{2}-\\d{2}$' },
      apiEndpoint: { type: 'string' },
      iamEndpoint: { type: 'string' },
      trustedProfile: { type: 'string' },
      environment: {
        type: 'object',
        additionalProperties: { anyOf: [{ type: 'string' }, { type: 'number' }, { type: 'boolean' }] },
      },
      secrets: { type: 'array', items: { type: 'string', pattern: '^[a-z]([-a-z0-9]*[a-z0-9])?$' } },
      codeBundle: {
        type: 'object',
        properties: { image: { type: 'string', minLength: 1 }, registrySecret: { type: 'string' } },
        required: ['image'],
        additionalProperties: false,
      },
      subscriptions: { enum: ['auto', 'run', 'print'] },
    },
  },
  function: {
    properties: {
      handler: { type: 'string', pattern: '^[^.]+(/[^.]+)*\\.[A-Za-z_$][A-Za-z0-9_$]*$' },
      memory: { enum: ['0.25G', '1G', '2G', '4G'] },
      cpu: { enum: ['0.125', '0.25', '0.5', '1'] },
      maxExecutionTime: { type: 'integer', minimum: 1, maximum: 120 },
      scaleDownDelay: { type: 'integer', minimum: 0, maximum: 600 },
      concurrency: { type: 'integer', minimum: 1, maximum: 100 },
      visibility: { enum: ['public', 'private', 'project'] },
      environment: {
        type: 'object',
        additionalProperties: { anyOf: [{ type: 'string' }, { type: 'number' }, { type: 'boolean' }] },
      },
    },
  },
  functionEvents: {
    schedule: {
      type: 'object',
      properties: {
        cron: { type: 'string', minLength: 9 },
        timeZone: { type: 'string' },
        data: {},
        enabled: { type: 'boolean' },
      },
      required: ['cron'],
      additionalProperties: false,
    },
  },
} as const;

const CPU_FOR_MEMORY: Record<string, string> = { '0.25G': '0.125', '1G': '0.25', '2G': '0.5', '4G': '1' };
const VISIBILITY: Record<string, string> = { public: 'local_public', private: 'local_private', project: 'local' };

/** Splits `functions/rotate.main` into the source path and the export name. */
export function parseHandler(handler: string): { file: string; exportName: string } {
  const dot = handler.lastIndexOf('.');
  return { file: handler.slice(0, dot), exportName: handler.slice(dot + 1) };
}

/** Environment variables of one function: provider env, function env, and what lockstep's functions read. */
export function envFor(provider: ProviderConfig, fnKey: string, fn: FunctionConfig): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...(provider.environment ?? {}), ...(fn.environment ?? {}) }))
    env[k] = String(v);
  env.LOCKSTEP_FUNCTION = fnKey;
  env.LOCKSTEP_MAX_EXECUTION_SECONDS = String(fn.maxExecutionTime ?? 60);
  if (provider.trustedProfile) env.LOCKSTEP_TRUSTED_PROFILE = provider.trustedProfile;
  return env;
}

/** The Code Engine v2 function body (create; the same fields minus `name` for a merge-patch update). */
export function functionBody(
  provider: ProviderConfig,
  fnKey: string,
  fn: FunctionConfig,
  ceName: string,
  codeReference: string,
): Record<string, unknown> {
  const memory = fn.memory ?? '1G';
  const cpu = fn.cpu ?? CPU_FOR_MEMORY[memory] ?? '0.25';
  const env = envFor(provider, fnKey, fn);
  return {
    name: ceName,
    runtime: provider.runtime ?? 'nodejs-24',
    code_reference: codeReference,
    code_main: parseHandler(fn.handler).exportName,
    ...(codeReference.startsWith('cr://') && provider.codeBundle?.registrySecret
      ? { code_secret: provider.codeBundle.registrySecret }
      : {}),
    managed_domain_mappings: VISIBILITY[fn.visibility ?? 'public'],
    run_env_variables: [
      ...Object.entries(env).map(([name, value]) => ({ type: 'literal', name, value })),
      ...(provider.secrets ?? []).map((reference) => ({ type: 'secret_full_reference', reference })),
    ],
    run_compute_resource_token_enabled: !!provider.trustedProfile,
    scale_concurrency: fn.concurrency ?? 1,
    scale_cpu_limit: cpu,
    scale_memory_limit: memory,
    scale_down_delay: fn.scaleDownDelay ?? 1,
    scale_max_execution_time: fn.maxExecutionTime ?? 60,
  };
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** One cron subscription and the exact CLI commands that manage it (the v2 REST API has no subscriptions). */
export interface CronSubscription {
  name: string;
  destination: string;
  schedule: string;
  timeZone: string;
  data?: string;
  create: string[];
  update: string[];
  remove: string[];
}

/** Cron subscriptions of one function, `<ce-name>-cron` (and `-cron-<n>` for further schedules). */
export function cronSubscriptions(ceName: string, fn: FunctionConfig): CronSubscription[] {
  const schedules = (fn.events ?? [])
    .map((e) => e.schedule)
    .filter((s): s is ScheduleEvent => !!s && s.enabled !== false);
  return schedules.map((s, i) => {
    const name = i === 0 ? `${ceName}-cron` : `${ceName}-cron-${i}`;
    const data = s.data === undefined ? undefined : typeof s.data === 'string' ? s.data : JSON.stringify(s.data);
    if (data && Buffer.byteLength(data) > 4096) throw new Error(`schedule data of ${ceName} exceeds 4096 bytes`);
    const common = [
      '--schedule',
      s.cron,
      '--time-zone',
      s.timeZone ?? 'UTC',
      ...(data !== undefined
        ? ['--content-type', typeof s.data === 'string' ? 'text/plain' : 'application/json', '--data', data]
        : []),
    ];
    return {
      name,
      destination: ceName,
      schedule: s.cron,
      timeZone: s.timeZone ?? 'UTC',
      ...(data !== undefined ? { data } : {}),
      create: [
        'ce',
        'sub',
        'cron',
        'create',
        '--name',
        name,
        '--destination-type',
        'function',
        '--destination',
        ceName,
        ...common,
      ],
      update: [
        'ce',
        'sub',
        'cron',
        'update',
        '--name',
        name,
        '--destination-type',
        'function',
        '--destination',
        ceName,
        ...common,
      ],
      remove: ['ce', 'sub', 'cron', 'delete', '--name', name, '--force'],
    };
  });
}

/** A command line as a user would paste it. */
export function renderCommand(args: string[]): string {
  return ['ibmcloud', ...args.map((a) => (/^[A-Za-z0-9._/=:-]+$/.test(a) ? a : shellQuote(a)))].join(' ');
}
