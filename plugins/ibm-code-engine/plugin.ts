/**
 * Serverless Framework 3 provider plugin for IBM Cloud Code Engine functions (`provider.name: ibm-code-engine`).
 *
 * - `package`: one minified CommonJS bundle per function (esbuild), sizes and largest contributors reported,
 *   inline code when the data URL fits 100 KB, otherwise a code bundle image in ICR — `.serverless/lockstep-package.json`.
 * - `deploy`: checks the config against Code Engine's rules (runtime, CPU/memory, image), IAM token (API key), the
 *   code bundle image in the registry, then per function GET → POST (201) or PATCH with `If-Match: <entity_tag>`
 *   (merge patch); waits for `status` ready with `status_details.reason` ready (a failed reason or a timeout fails the
 *   deploy); env literals + secret references; cron subscriptions through the `ibmcloud` CLI (run or print).
 * - `remove`, `info`, `invoke local` (the bundle's `main(params)` with Code Engine-shaped params).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { CE_PING_TYPE, fromCeResult, toCeParams } from '../../src/codeengine/index.js';
import type { BundleReport } from './build.js';
import { bundleFunction, kb } from './build.js';
import type { CeApiClient, CeFunction } from './ceApi.js';
import { ceApiClient, iamToken, readiness } from './ceApi.js';
import type { FunctionConfig, ProviderConfig } from './config.js';
import {
  cronSubscriptions,
  DEFAULT_API_VERSION,
  functionBody,
  PROVIDER_NAME,
  providerSchema,
  renderCommand,
  validateConfig,
} from './config.js';
import { imageExists } from './registry.js';

interface Serverless {
  service: {
    service: string;
    provider: ProviderConfig;
    functions: Record<string, FunctionConfig>;
    getAllFunctions(): string[];
    getFunction(key: string): FunctionConfig & { name: string };
  };
  serviceDir: string;
  setProvider(name: string, provider: unknown): void;
  configSchemaHandler: { defineProvider(name: string, schema: unknown): void };
}

interface Options {
  function?: string;
  data?: string;
  path?: string;
  env?: string[];
  stage?: string;
}

interface Utils {
  log?: ((msg: string) => void) & { notice?: (m: string) => void; warning?: (m: string) => void };
  writeText?: (text: string) => void;
}

const PACKAGE_DIR = '.serverless';
const MANIFEST = 'lockstep-package.json';

export class CodeEngineProviderPlugin {
  static getProviderName(): string {
    return PROVIDER_NAME;
  }

  readonly hooks: Record<string, () => Promise<void>>;
  readonly #sls: Serverless;
  readonly #options: Options;
  readonly #write: (text: string) => void;

  constructor(serverless: Serverless, options: Options, utils: Utils = {}) {
    this.#sls = serverless;
    this.#options = options ?? {};
    this.#write = utils.writeText ?? ((t) => process.stdout.write(`${t}\n`));
    serverless.setProvider(PROVIDER_NAME, this);
    serverless.configSchemaHandler.defineProvider(PROVIDER_NAME, providerSchema);
    this.hooks = {
      'before:package:createDeploymentArtifacts': () => this.package(),
      'deploy:deploy': () => this.deploy(),
      'remove:remove': () => this.remove(),
      'info:info': () => this.info(),
      'invoke:local:invoke': () => this.invokeLocal(),
    };
  }

  get #provider(): ProviderConfig {
    return this.#sls.service.provider;
  }

  #ceName(key: string): string {
    const name = this.#sls.service.getFunction(key).name;
    if (!/^[a-z]([-a-z0-9]*[a-z0-9])?$/.test(name) || name.length > 63) {
      throw new Error(`Code Engine function name "${name}" is invalid: use ≤63 lower-case letters, digits, hyphens`);
    }
    return name;
  }

  #outDir(): string {
    return path.join(this.#sls.serviceDir, PACKAGE_DIR);
  }

  #validate(): void {
    const fns = Object.fromEntries(
      this.#sls.service.getAllFunctions().map((k) => [k, this.#sls.service.getFunction(k)] as const),
    );
    validateConfig(this.#provider, fns);
  }

  /** Builds every function and records the reports. */
  async package(): Promise<void> {
    this.#validate();
    const reports: BundleReport[] = [];
    for (const key of this.#sls.service.getAllFunctions()) {
      const fn = this.#sls.service.getFunction(key);
      const report = await bundleFunction({
        serviceDir: this.#sls.serviceDir,
        outDir: this.#outDir(),
        fnKey: key,
        handler: fn.handler,
      });
      // Skip the core zip packager: the bundle is the artifact.
      fn.package = { ...(fn.package ?? {}), artifact: path.relative(this.#sls.serviceDir, report.outFile) };
      reports.push(report);
      const top = report.top.map((t) => `${t.name} ${kb(t.bytes)}`).join(', ');
      this.#write(
        `${key}: ${kb(report.bytes)} minified (${kb(report.inlineBytes)} as inline data URL) → ${report.mode}${
          report.mode === 'code-bundle' ? ' (over the 100 KB inline limit)' : ''
        }; largest: ${top}`,
      );
      if (report.mode === 'code-bundle' && this.#provider.codeBundle?.image) {
        const image = this.#codeReference(report);
        this.#write(`${key}: push the code bundle ${image} before deploy:\n${this.#imageBuildCommands(report, image)}`);
      }
    }
    writeFileSync(path.join(this.#outDir(), MANIFEST), `${JSON.stringify({ functions: reports }, null, 2)}\n`);
  }

  #manifest(): BundleReport[] {
    const file = path.join(this.#outDir(), MANIFEST);
    if (!existsSync(file)) throw new Error('no package found: run `serverless package` first');
    return (JSON.parse(readFileSync(file, 'utf8')) as { functions: BundleReport[] }).functions;
  }

  async #client(): Promise<CeApiClient> {
    const p = this.#provider;
    const region = p.region ?? 'us-south';
    if (!p.projectId) throw new Error('provider.projectId is required (the Code Engine project id)');
    let token = process.env.IBMCLOUD_IAM_TOKEN?.replace(/^Bearer\s+/i, '');
    if (!token) {
      const apiKey = process.env.IBMCLOUD_API_KEY;
      if (!apiKey) throw new Error('set IBMCLOUD_API_KEY (or IBMCLOUD_IAM_TOKEN) to deploy');
      token = await iamToken(p.iamEndpoint || 'https://iam.cloud.ibm.com', apiKey);
    }
    return ceApiClient({
      baseUrl: p.apiEndpoint || `https://api.${region}.codeengine.cloud.ibm.com/v2`,
      projectId: p.projectId,
      version: p.apiVersion ?? DEFAULT_API_VERSION,
      token,
    });
  }

  #codeReference(report: BundleReport): string {
    if (report.mode === 'inline') {
      return `data:text/plain;base64,${readFileSync(report.outFile).toString('base64')}`;
    }
    const image = this.#provider.codeBundle?.image;
    if (!image) {
      throw new Error(
        `${report.function} is ${kb(report.inlineBytes)} as inline code, over Code Engine's 100 KB limit: set provider.codeBundle.image (an ICR repository) and push the bundle in ${path.dirname(report.outFile)}`,
      );
    }
    // The API takes REGISTRY/NAMESPACE/REPOSITORY:TAG (no cr:// scheme); the tag names the bundle's content.
    return `${image}:${report.function}-${report.sha256.slice(0, 12)}`;
  }

  /** Refuses to point a function at an image the registry does not hold (Code Engine would report no_code_bundle). */
  async #requireCodeBundle(report: BundleReport, image: string): Promise<void> {
    const apiKey = process.env.IBMCLOUD_API_KEY;
    if (!apiKey) {
      throw new Error(
        `${report.function}: checking the code bundle ${image} needs IBMCLOUD_API_KEY (the registry takes iamapikey credentials)`,
      );
    }
    if (await imageExists(image, apiKey, this.#provider.codeBundle?.registryEndpoint)) return;
    throw new Error(
      `${report.function}: code bundle ${image} is not in the registry; nothing was deployed. Build and push it, then deploy again:\n${this.#imageBuildCommands(report, image)}`,
    );
  }

  /** Creates or updates every function, then the cron subscriptions. */
  async deploy(): Promise<void> {
    this.#validate();
    const reports = this.#manifest();
    const api = await this.#client();
    const missing: string[] = [];
    for (const s of this.#provider.secrets ?? []) if (!(await api.secretExists(s))) missing.push(s);
    if (missing.length) {
      throw new Error(
        `Code Engine secret(s) missing: ${missing.join(', ')}. Create them first, e.g. ibmcloud ce secret create --name ${missing[0]} --from-env-file secrets.env`,
      );
    }
    const plans = [];
    for (const key of this.#sls.service.getAllFunctions()) {
      const report = reports.find((r) => r.function === key);
      if (!report) throw new Error(`${key} was not packaged: run serverless package`);
      const codeReference = this.#codeReference(report);
      if (report.mode === 'code-bundle') await this.#requireCodeBundle(report, codeReference);
      plans.push({ key, ceName: this.#ceName(key), codeReference });
    }
    for (const { key, ceName, codeReference } of plans) {
      const body = functionBody(this.#provider, key, this.#sls.service.getFunction(key), ceName, codeReference);
      const existing = await api.getFunction(ceName);
      if (!existing) {
        await api.createFunction(body);
        this.#write(`${key}: created ${ceName}`);
      } else {
        const { name: _name, ...patch } = body;
        await api.updateFunction(ceName, existing.entity_tag, patch);
        this.#write(`${key}: updated ${ceName}`);
      }
      const ready = await this.#waitUntilReady(api, ceName);
      this.#write(`${key}: ready ${ready.endpoint ?? ''}`.trimEnd());
    }
    this.#subscriptions('deploy');
  }

  /**
   * Polls the function (never trusting the create/update answer) until `status` is ready with reason `ready`. A failed
   * status, `ready_last_update_failed`, `no_code_bundle` or the timeout (LOCKSTEP_CE_READY_TIMEOUT_MS, default 600 s
   * like the CLI's --wait-timeout) fails the deploy.
   */
  async #waitUntilReady(api: CeApiClient, ceName: string): Promise<CeFunction> {
    const pollMs = Number(process.env.LOCKSTEP_CE_POLL_MS ?? 2000);
    const timeoutMs = Number(process.env.LOCKSTEP_CE_READY_TIMEOUT_MS ?? 600_000);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const fn = await api.getFunction(ceName);
      if (!fn) throw new Error(`${ceName} disappeared while deploying`);
      const r = readiness(fn);
      if (r.state === 'ready') return fn;
      if (r.state === 'failed') throw new Error(`${ceName} failed to deploy: ${r.detail}`);
      if (Date.now() + pollMs > deadline) {
        throw new Error(`${ceName} did not become ready within ${timeoutMs / 1000} s (last: ${r.detail})`);
      }
      await new Promise((resolve) => setTimeout(resolve, pollMs));
    }
  }

  #imageBuildCommands(report: BundleReport, image: string): string {
    const dir = path.relative(this.#sls.serviceDir, path.dirname(report.outFile));
    return [
      `  printf 'FROM scratch\\nADD bundle.tar.gz .\\n' > ${dir}/Dockerfile`,
      `  tar -C ${dir} -czf ${dir}/bundle.tar.gz main.js package.json`,
      `  docker build --platform linux/amd64 -t ${image} ${dir} && docker push ${image}`,
    ].join('\n');
  }

  #cliMode(): 'run' | 'print' {
    const mode = this.#provider.subscriptions ?? 'auto';
    if (mode !== 'auto') return mode;
    return spawnSync('ibmcloud', ['--version'], { stdio: 'ignore' }).status === 0 ? 'run' : 'print';
  }

  #subscriptions(action: 'deploy' | 'remove'): void {
    const subs = this.#sls.service
      .getAllFunctions()
      .flatMap((key) => cronSubscriptions(this.#ceName(key), this.#sls.service.getFunction(key)));
    if (subs.length === 0) return;
    const mode = this.#cliMode();
    const select = ['ce', 'project', 'select', '--id', this.#provider.projectId ?? ''];
    if (mode === 'print') {
      this.#write(
        [
          `Cron subscriptions (the Code Engine REST API has none; run these with the ibmcloud CLI):`,
          `  ${renderCommand(select)}`,
          ...subs.map((s) =>
            action === 'deploy'
              ? `  ${renderCommand(s.create)}\n    # if it exists: ${renderCommand(s.update)}`
              : `  ${renderCommand(s.remove)}`,
          ),
        ].join('\n'),
      );
      return;
    }
    const run = (args: string[]) => spawnSync('ibmcloud', args, { encoding: 'utf8' });
    if (run(select).status !== 0) throw new Error(`ibmcloud ${select.join(' ')} failed`);
    for (const s of subs) {
      const exists = run(['ce', 'sub', 'cron', 'get', '--name', s.name]).status === 0;
      const args = action === 'remove' ? s.remove : exists ? s.update : s.create;
      if (action === 'remove' && !exists) continue;
      const r = run(args);
      if (r.status !== 0) throw new Error(`${renderCommand(args)} failed: ${r.stderr}`);
      this.#write(`${action === 'remove' ? 'deleted' : exists ? 'updated' : 'created'} cron subscription ${s.name}`);
    }
  }

  /** Deletes every function (and the cron subscriptions). */
  async remove(): Promise<void> {
    const api = await this.#client();
    this.#subscriptions('remove');
    for (const key of this.#sls.service.getAllFunctions()) {
      const ceName = this.#ceName(key);
      const deleted = await api.deleteFunction(ceName);
      this.#write(`${key}: ${deleted ? 'deleted' : 'not found'} ${ceName}`);
    }
  }

  /** Prints each function's status and endpoint. */
  async info(): Promise<void> {
    const api = await this.#client();
    const lines = [`service: ${this.#sls.service.service}`, `project: ${this.#provider.projectId}`, 'functions:'];
    for (const key of this.#sls.service.getAllFunctions()) {
      const ceName = this.#ceName(key);
      const fn = await api.getFunction(ceName);
      lines.push(
        fn
          ? `  ${key}: ${ceName} ${fn.status} ${fn.runtime ?? ''} ${fn.endpoint ?? ''}`.trimEnd()
          : `  ${key}: ${ceName} not deployed`,
      );
      for (const s of cronSubscriptions(ceName, this.#sls.service.getFunction(key))) {
        lines.push(`    cron ${s.name}: ${s.schedule} (${s.timeZone})`);
      }
    }
    this.#write(lines.join('\n'));
  }

  /**
   * Bundles the function and calls its `main(params)` in this process with Code Engine-shaped params: a cron ping
   * (with the first schedule's data) for scheduled functions called without `--data`, else an HTTP POST of `--data`.
   * Environment: provider + function env, `--env K=V`, and the local stack's `.lockstep/dev.json` when present.
   */
  async invokeLocal(): Promise<void> {
    const key = this.#options.function;
    if (!key) throw new Error('--function is required');
    const fn = this.#sls.service.getFunction(key);
    const report = await bundleFunction({
      serviceDir: this.#sls.serviceDir,
      outDir: this.#outDir(),
      fnKey: key,
      handler: fn.handler,
    });
    const env: Record<string, string> = {
      ...functionEnvLiterals(functionBody(this.#provider, key, fn, key, 'data:text/plain;base64,')),
      ...devStackEnv(this.#sls.serviceDir),
    };
    for (const kv of this.#options.env ?? []) {
      const i = kv.indexOf('=');
      if (i > 0) env[kv.slice(0, i)] = kv.slice(i + 1);
    }
    for (const [k, v] of Object.entries(env)) if (process.env[k] === undefined) process.env[k] = v;

    let data = this.#options.data;
    if (data === undefined && this.#options.path) data = readFileSync(path.resolve(this.#options.path), 'utf8');
    const schedule = fn.events?.find((e) => e.schedule)?.schedule;
    const params =
      data === undefined && schedule
        ? toCeParams({
            method: 'POST',
            headers: {
              'ce-id': `local-${Date.now()}`,
              'ce-source': `/apis/v1/namespaces/local/pingsources/${key}-cron`,
              'ce-specversion': '1.0',
              'ce-time': new Date().toISOString(),
              'ce-type': CE_PING_TYPE,
              'content-type': typeof schedule.data === 'string' ? 'text/plain' : 'application/json',
            },
            body: Buffer.from(
              schedule.data === undefined
                ? ''
                : typeof schedule.data === 'string'
                  ? schedule.data
                  : JSON.stringify(schedule.data),
            ),
          })
        : toCeParams({
            method: data === undefined ? 'GET' : 'POST',
            headers: data === undefined ? {} : { 'content-type': 'application/json' },
            ...(data === undefined ? {} : { body: Buffer.from(data) }),
          });
    const req = createRequire(path.join(this.#sls.serviceDir, 'noop.js'));
    const mod = req(report.outFile) as { main: (p: unknown) => Promise<unknown> };
    const result = await mod.main(params);
    const http = fromCeResult(result);
    this.#write(JSON.stringify(result, null, 2));
    if (http.statusCode >= 500) process.exitCode = 1;
  }
}

function functionEnvLiterals(body: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of body.run_env_variables as Array<{ type: string; name?: string; value?: string }>) {
    if (v.type === 'literal' && v.name && v.value !== undefined) out[v.name] = v.value;
  }
  return out;
}

/** Env variables that point the functions at the local stack (`lockstep dev` writes `.lockstep/dev.json`). */
export function devStackEnv(serviceDir: string): Record<string, string> {
  const file = path.join(serviceDir, '.lockstep', 'dev.json');
  if (!existsSync(file)) return {};
  const dev = JSON.parse(readFileSync(file, 'utf8')) as {
    iam?: { url?: string; apiKeys?: Record<string, string> };
    keyProtect?: Record<string, { url: string }>;
    cloudant?: { url?: string };
    events?: { url?: string; token?: string };
    notifications?: { url?: string };
  };
  const env: Record<string, string> = {};
  if (dev.cloudant?.url) env.CLOUDANT_URL = dev.cloudant.url;
  if (dev.iam?.url) env.IAM_URL = dev.iam.url;
  const apiKey = dev.iam?.apiKeys?.lockstep ?? dev.iam?.apiKeys?.operator;
  if (apiKey) env.LOCKSTEP_API_KEY = apiKey;
  if (dev.keyProtect) {
    env.LOCKSTEP_KP_ENDPOINTS = JSON.stringify(
      Object.fromEntries(Object.entries(dev.keyProtect).map(([r, v]) => [r, v.url])),
    );
  }
  if (dev.events?.token) env.LOCKSTEP_EVENTS_TOKENS = `dev:${dev.events.token}`;
  if (dev.notifications?.url) env.LOCKSTEP_NOTIFY_URL = dev.notifications.url;
  return env;
}
