/**
 * The published rules of a Code Engine v2 function body, as the stand-in enforces them. Each rule's source is named in
 * README.md next to this file; where IBM's sources are silent the stricter reading is taken (also listed there).
 */

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const DAY_MS = 86_400_000;

/** Managed function runtimes with their deprecation and end-of-life dates (`fun-runtime.md`). */
export const CE_RUNTIME_LIFECYCLE = [
  { id: 'nodejs-20', family: 'nodejs', deprecation: '2025-11-01', endOfLife: '2026-04-30' },
  { id: 'nodejs-22', family: 'nodejs', deprecation: '2026-10-20', endOfLife: '2027-04-30' },
  { id: 'nodejs-24', family: 'nodejs', deprecation: '2027-10-20', endOfLife: '2028-04-30' },
  { id: 'python-3.11', family: 'python', deprecation: '2025-10-31', endOfLife: '2026-10-31' },
  { id: 'python-3.13', family: 'python', deprecation: '2026-10-01', endOfLife: '2027-04-30' },
] as const;

/** Function CPU/memory combinations (`mem-cpu-combo.md#supported-combo-fun`); the API default is 1 vCPU / 4 GB. */
export const FUNCTION_CPU_MEMORY: Readonly<Record<string, string>> = { '0.25': '1G', '0.5': '2G', '1': '4G' };
export const DEFAULT_CPU = '1';
export const DEFAULT_MEMORY = '4G';
/** Inline code limit, base64 overhead included (`limits.md#limits_functions`). */
export const INLINE_CODE_LIMIT_BYTES = 100 * 1024;

// Patterns of the API definition (as generated into terraform-provider-ibm's ibm_code_engine_function validator).
const NAME = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const RUNTIME = /^[a-z]*-[0-9]*(\.[0-9]*)?$/;
const CODE_MAIN = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const CODE_SECRET = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const QUANTITY = /^([0-9.]+)([eEinumkKMGTPB]*)$/;
const IMAGE_REF =
  /^([a-z0-9][a-z0-9\-_.]+[a-z0-9][/])?([a-z0-9][a-z0-9\-_]+[a-z0-9][/])?[a-z0-9][a-z0-9\-_./]+[a-z0-9](:\w[\w.-]{0,127})?(@sha256:[a-fA-F0-9]{64})?$/;
const DATA_URL = /^data:([-\w]+\/[-+\w.]+)?(;?\w+=[-\w]+)*;base64,([A-Za-z0-9+/]*={0,2})$/;
/** IBM Cloud Container Registry hosts: `icr.io`, `<region>.icr.io`, `private.<region>.icr.io`. */
const ICR_HOST = /^(private\.)?([a-z]{2}[0-9]?\.)?icr\.io$/;
const CODE_REFERENCE_MAX = 1_048_576;

const ENV_TYPES = [
  'literal',
  'secret_full_reference',
  'secret_key_reference',
  'config_map_full_reference',
  'config_map_key_reference',
];

/** Fields of `createFunction`'s body (SDK `code-engine/v2.ts`); an update takes the same minus `name`. */
export const FUNCTION_FIELDS = [
  'name',
  'runtime',
  'code_reference',
  'code_binary',
  'code_main',
  'code_secret',
  'managed_domain_mappings',
  'run_compute_resource_token_enabled',
  'run_env_variables',
  'scale_concurrency',
  'scale_cpu_limit',
  'scale_down_delay',
  'scale_max_execution_time',
  'scale_memory_limit',
] as const;

const invalid = (message: string) => new ApiError(400, 'invalid_field', message);

function string(body: Record<string, unknown>, f: string, pattern: RegExp, max: number, min = 1): void {
  const v = body[f];
  if (typeof v !== 'string' || v.length < min || v.length > max || !pattern.test(v)) {
    throw invalid(`${f} must match ${pattern.source} (${min}-${max} characters)`);
  }
}

function integer(body: Record<string, unknown>, f: string, min: number, max: number): void {
  const v = body[f];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw invalid(`${f} must be an integer between ${min} and ${max}`);
  }
}

/** `data:` URL ≤ 100 KB, or a code bundle image in IBM Cloud Container Registry (no `cr://` prefix). */
export function validateCodeReference(ref: unknown): void {
  if (typeof ref !== 'string' || ref.length === 0 || ref.length > CODE_REFERENCE_MAX) {
    throw invalid('code_reference is required (a data URL or a code bundle image reference)');
  }
  if (ref.startsWith('data:')) {
    if (!DATA_URL.test(ref)) throw invalid('code_reference data URL must be data:[<mediatype>];base64,<base64 code>');
    if (Buffer.byteLength(ref) > INLINE_CODE_LIMIT_BYTES) {
      throw new ApiError(400, 'code_too_large', `inline code exceeds ${INLINE_CODE_LIMIT_BYTES} bytes with base64`);
    }
    return;
  }
  if (!IMAGE_REF.test(ref)) {
    throw invalid(`code_reference "${ref}" is not an image reference REGISTRY/NAMESPACE/REPOSITORY[:TAG] (no scheme)`);
  }
  const slash = ref.indexOf('/');
  const host = ref.slice(0, slash);
  if (slash < 0 || !ICR_HOST.test(host) || ref.split('/').length < 3) {
    throw invalid(`code_reference "${ref}": code bundles are pulled only from IBM Cloud Container Registry (icr.io)`);
  }
}

/** True when `ref` names a code bundle image rather than inline code. */
export function isImageReference(ref: string): boolean {
  return !ref.startsWith('data:');
}

/** Rejects a runtime outside the managed list or past its end of life at `nowMs`. */
export function validateRuntime(runtime: unknown, nowMs: number): void {
  if (typeof runtime !== 'string' || runtime.length > 63 || !RUNTIME.test(runtime)) {
    throw invalid(`runtime must match ${RUNTIME.source}`);
  }
  const r = CE_RUNTIME_LIFECYCLE.find((x) => x.id === runtime);
  const live = liveRuntimes(nowMs).map((x) => x.id);
  if (!r) throw invalid(`runtime ${runtime} is not a managed function runtime: use one of ${live.join(', ')}`);
  if (nowMs >= Date.parse(r.endOfLife) + DAY_MS) {
    throw invalid(`runtime ${runtime} reached its end of life on ${r.endOfLife}: use one of ${live.join(', ')}`);
  }
}

/** Runtimes not past their end of life, with `deprecated` set once the deprecation date is reached. */
export function liveRuntimes(nowMs: number) {
  return CE_RUNTIME_LIFECYCLE.filter((r) => nowMs < Date.parse(r.endOfLife) + DAY_MS).map((r) => ({
    id: r.id,
    name: r.id,
    family: r.family,
    optimized: true,
    deprecated: nowMs >= Date.parse(r.deprecation),
    default: r.id === 'nodejs-24' || r.id === 'python-3.13',
  }));
}

/** The resulting CPU/memory pair (after defaults or the merge) must be one of the three function combinations. */
export function validateCpuMemory(cpu: string, memory: string): void {
  if (FUNCTION_CPU_MEMORY[cpu] !== memory) {
    const combos = Object.entries(FUNCTION_CPU_MEMORY)
      .map(([c, m]) => `${c}/${m}`)
      .join(', ');
    throw invalid(`scale_cpu_limit/scale_memory_limit ${cpu}/${memory} is not a function combination: use ${combos}`);
  }
}

function validateEnvVariables(vars: unknown): void {
  if (!Array.isArray(vars)) throw invalid('run_env_variables must be an array');
  for (const v of vars) {
    if (!v || typeof v !== 'object' || !ENV_TYPES.includes(String((v as { type?: unknown }).type ?? 'literal'))) {
      throw invalid(`run_env_variables[].type must be one of ${ENV_TYPES.join(', ')}`);
    }
    const e = v as Record<string, unknown>;
    const type = String(e.type ?? 'literal');
    if (type === 'literal' && (typeof e.name !== 'string' || typeof e.value !== 'string')) {
      throw invalid('literal env variables need a name and a string value');
    }
    if (type.endsWith('_reference') && typeof e.reference !== 'string') {
      throw invalid(`${type} env variables need a reference`);
    }
    if (type.endsWith('_key_reference') && (typeof e.key !== 'string' || typeof e.name !== 'string')) {
      throw invalid(`${type} env variables need a name and a key`);
    }
  }
}

/** Checks every field present in a create body or a merge patch (null values are handled by the caller). */
export function validateFunctionFields(body: Record<string, unknown>, kind: 'create' | 'update', nowMs: number): void {
  const allowed: readonly string[] = kind === 'create' ? FUNCTION_FIELDS : FUNCTION_FIELDS.filter((f) => f !== 'name');
  for (const f of Object.keys(body)) {
    if (!allowed.includes(f)) {
      throw invalid(
        kind === 'update' && f === 'name' ? 'name cannot be changed' : `unknown field ${f} in a function ${kind}`,
      );
    }
  }
  const present = (f: string) => body[f] !== undefined && body[f] !== null;
  if (present('name')) string(body, 'name', NAME, 63);
  if (present('runtime')) validateRuntime(body.runtime, nowMs);
  if (present('code_reference')) validateCodeReference(body.code_reference);
  if (present('code_main')) string(body, 'code_main', CODE_MAIN, 63);
  if (present('code_secret')) string(body, 'code_secret', CODE_SECRET, 253);
  if (present('code_binary') && typeof body.code_binary !== 'boolean') throw invalid('code_binary must be a boolean');
  if (present('managed_domain_mappings')) {
    if (!['local', 'local_private', 'local_public'].includes(String(body.managed_domain_mappings))) {
      throw invalid('managed_domain_mappings must be local, local_private or local_public');
    }
  }
  if (present('scale_concurrency')) integer(body, 'scale_concurrency', 1, 100);
  if (present('scale_down_delay')) integer(body, 'scale_down_delay', 0, 600);
  if (present('scale_max_execution_time')) integer(body, 'scale_max_execution_time', 1, 120);
  if (present('scale_cpu_limit')) string(body, 'scale_cpu_limit', QUANTITY, 10);
  if (present('scale_memory_limit')) string(body, 'scale_memory_limit', QUANTITY, 10);
  if (present('run_env_variables')) validateEnvVariables(body.run_env_variables);
  if (present('run_compute_resource_token_enabled') && typeof body.run_compute_resource_token_enabled !== 'boolean') {
    throw invalid('run_compute_resource_token_enabled must be a boolean');
  }
}
