/**
 * The plugin's configuration surface (validated by Serverless through `defineProvider`) and the pure mapping from a
 * function's configuration to a Code Engine v2 function body and to cron subscription commands.
 */

/** `provider.name` in serverless.yml. */
export const PROVIDER_NAME = 'ibm-code-engine';
/** Node.js runtimes still supported (docs `fun-runtime.md`): nodejs-20 reached its end of life on 2026-04-30. */
export const RUNTIMES = ['nodejs-22', 'nodejs-24'] as const;
/** The only CPU/memory combinations of a function (docs `mem-cpu-combo.md#supported-combo-fun`). */
export const FUNCTION_COMBOS: ReadonlyArray<{ cpu: string; memory: string }> = [
  { cpu: '0.25', memory: '1G' },
  { cpu: '0.5', memory: '2G' },
  { cpu: '1', memory: '4G' },
];
/**
 * A code bundle image in IBM Cloud Container Registry, without tag and without scheme:
 * `[private.][<region>.]icr.io/<namespace>/<repository>` (namespace 4-30 characters, docs `add-registry.md`).
 */
export const ICR_IMAGE =
  '^(private\\.)?([a-z]{2}[0-9]?\\.)?icr\\.io/[a-z0-9][a-z0-9_-]{2,28}[a-z0-9]/[a-z0-9][a-z0-9._/-]{0,253}[a-z0-9]$';
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
  /**
   * Where bundles over the inline limit are published: `<image>:<fn>-<hash>` is the function's `code_reference`.
   * `registryEndpoint` overrides the registry API the plugin checks the image in (default `https://<public host>`).
   */
  codeBundle?: { image: string; registrySecret?: string; registryEndpoint?: string };
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
        properties: {
          image: { type: 'string', pattern: ICR_IMAGE },
          registrySecret: {
            type: 'string',
            pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$',
          },
          registryEndpoint: { type: 'string' },
        },
        required: ['image'],
        additionalProperties: false,
      },
      subscriptions: { enum: ['auto', 'run', 'print'] },
    },
  },
  function: {
    properties: {
      handler: { type: 'string', pattern: '^[^.]+(/[^.]+)*\\.[A-Za-z_$][A-Za-z0-9_$]*$' },
      memory: { enum: FUNCTION_COMBOS.map((c) => c.memory) },
      cpu: { enum: FUNCTION_COMBOS.map((c) => c.cpu) },
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

/**
 * The function's CPU/memory: as configured when both are set; the partner of the one that is set; else 0.25/1G, the
 * pre-warmed combination (the API's own default would be 1/4G).
 */
export function functionResources(fn: FunctionConfig): { cpu: string; memory: string } {
  const cpu = fn.cpu === undefined ? undefined : String(fn.cpu);
  const memory = fn.memory === undefined ? undefined : String(fn.memory);
  if (cpu === undefined && memory === undefined) return FUNCTION_COMBOS[0]!;
  return {
    cpu: cpu ?? FUNCTION_COMBOS.find((c) => c.memory === memory)?.cpu ?? '(none)',
    memory: memory ?? FUNCTION_COMBOS.find((c) => c.cpu === cpu)?.memory ?? '(none)',
  };
}

/**
 * Checks what the Code Engine API would refuse, before any call: the runtime, each function's CPU/memory pair and the
 * code bundle image. Throws one error listing every problem and how to fix it.
 */
export function validateConfig(provider: ProviderConfig, functions: Record<string, FunctionConfig>): void {
  const problems: string[] = [];
  const runtime = provider.runtime ?? 'nodejs-24';
  if (!(RUNTIMES as readonly string[]).includes(runtime)) {
    problems.push(
      `provider.runtime ${runtime} is not supported: use ${RUNTIMES.join(' or ')} (nodejs-20 reached its end of life on 2026-04-30)`,
    );
  }
  const combos = FUNCTION_COMBOS.map((c) => `${c.cpu}/${c.memory}`).join(', ');
  for (const [key, fn] of Object.entries(functions)) {
    const { cpu, memory } = functionResources(fn);
    if (!FUNCTION_COMBOS.some((c) => c.cpu === cpu && c.memory === memory)) {
      problems.push(
        `functions.${key}: cpu ${fn.cpu ?? '(unset)'} with memory ${fn.memory ?? '(unset)'} is not a Code Engine function combination: use cpu/memory ${combos}`,
      );
    }
  }
  const image = provider.codeBundle?.image;
  if (image !== undefined && !new RegExp(ICR_IMAGE).test(image)) {
    problems.push(
      `provider.codeBundle.image ${image} is not an IBM Cloud Container Registry repository: write [private.]<region>.icr.io/<namespace>/<repository>, without cr:// and without a tag`,
    );
  }
  if (problems.length) throw new Error(`serverless.yml does not fit Code Engine:\n  - ${problems.join('\n  - ')}`);
}

/** The Code Engine v2 function body (create; the same fields minus `name` for a merge-patch update). */
export function functionBody(
  provider: ProviderConfig,
  fnKey: string,
  fn: FunctionConfig,
  ceName: string,
  codeReference: string,
): Record<string, unknown> {
  const { cpu, memory } = functionResources(fn);
  const env = envFor(provider, fnKey, fn);
  return {
    name: ceName,
    runtime: provider.runtime ?? 'nodejs-24',
    code_reference: codeReference,
    code_main: parseHandler(fn.handler).exportName,
    ...(!codeReference.startsWith('data:') && provider.codeBundle?.registrySecret
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
