/**
 * Local Code Engine function runner: serves each function on its own 127.0.0.1 port exactly as Code Engine calls it
 * (the same `params` encoding: re-cased `__ce_headers`, base64 `__ce_body` for JSON/binary, unfolded keys) and
 * delivers cron pings (Knative PingSource CloudEvents) on each function's schedule. Used by `lockstep dev` and the
 * e2e tests. Dev-server only: no production code path reaches it.
 *
 * Code Engine's rules it models (ibm-cloud-docs/codeengine):
 * - `limits.md` "Function limits": request and response bodies are at most 5 MB; a larger one is answered 400 (in
 *   both directions: the request is not delivered; an oversized result is not returned).
 * - `fun-exchanging-data-with-functions.md`: the `params` encoding, `__ce_*` names reserved (400).
 * - `subscription-cron.md` "Cron header and body information for events delivered to functions": a cron delivery is
 *   internal to the platform; its data arrives in `body` (base64 when `application/json`), its JSON keys unfolded,
 *   the CloudEvent attributes in `__ce_headers` ({@link toCronParams}). An HTTP request that merely carries a
 *   `Ce-Type: dev.knative.sources.ping` header is an ordinary request (body in `__ce_body`).
 * - `limits.md` "Periodic timer (cron) event producer limits": the data is at most 4096 bytes.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Cron } from 'croner';
import type { CeParams } from '../../codeengine/index.js';
import { fromCeResult, mediaTypeOf, toCeParams, toCronParams } from '../../codeengine/index.js';
import type { HttpResponse, Logger } from '../../core/index.js';
import { silentLogger } from '../../core/index.js';

/** One cron subscription (as `ibmcloud ce sub cron create --destination-type function`). */
export interface RunnerSchedule {
  /** Five-field cron expression (croner also accepts six fields with seconds, handy in tests). */
  cron: string;
  timeZone?: string;
  /** Sent as the event data (JSON unless a string). At most 4096 bytes, as in Code Engine. */
  data?: unknown;
  /** Subscription name (default `<fn>-cron-<n>`). */
  name?: string;
}

/** A function to serve. */
export interface RunnerFunction {
  name: string;
  /** The function's `main`: in-process, or loaded from a bundle with {@link loadBundle}. */
  main: (params: CeParams) => unknown;
  schedules?: RunnerSchedule[];
}

export interface FunctionRunnerOptions {
  functions: RunnerFunction[];
  /** Start the cron timers (default true). Tests usually call `fireCron` instead. */
  startCron?: boolean;
  /** Largest request and response body: Code Engine's 5 MB (default). */
  maxBodyBytes?: number;
  logger?: Logger;
}

export interface FunctionRunner {
  /** Base URL of each function (`http://127.0.0.1:<port>`), as a Code Engine function endpoint. */
  urls: Record<string, string>;
  url(name: string): string;
  /** Delivers one cron ping to a function now (as the platform does, like the timer) and returns its response. */
  fireCron(name: string, scheduleIndex?: number): Promise<HttpResponse>;
  /** Invocations so far, per function. */
  invocations(name: string): number;
  close(): Promise<void>;
}

const MAX_CRON_DATA_BYTES = 4096;
/** Code Engine's limit on request and response bodies (`limits.md`: 5 MB). */
export const CE_MAX_BODY_BYTES = 5 * 1024 * 1024;

function readBody(req: IncomingMessage, limit: number): Promise<Buffer | 'too-large'> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) over = true;
      else chunks.push(c);
    });
    req.on('end', () => resolve(over ? 'too-large' : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function jsonKeysReserved(body: Buffer): boolean {
  if (body.length === 0) return false;
  try {
    const v: unknown = JSON.parse(body.toString('utf8'));
    return !!v && typeof v === 'object' && Object.keys(v).some((k) => k.startsWith('__ce_'));
  } catch {
    return false;
  }
}

function send(res: ServerResponse, r: HttpResponse, extra: Record<string, string> = {}): void {
  res.writeHead(r.statusCode, { ...r.headers, ...extra });
  res.end(r.body);
}

function platformError(status: number, message: string): HttpResponse {
  return { statusCode: status, headers: { 'content-type': 'text/plain; charset=utf-8' }, body: message };
}

/** Loads a bundled `main.js` (CommonJS, `exports.main`) the way the Code Engine Node runtime does. */
export async function loadBundle(file: string): Promise<RunnerFunction['main']> {
  const { createRequire } = await import('node:module');
  const req = createRequire(import.meta.url);
  const mod = req(file) as { main?: RunnerFunction['main'] };
  if (typeof mod.main !== 'function') throw new Error(`${file} does not export main`);
  return mod.main;
}

/** Starts one HTTP server per function and the cron timers. */
export async function startFunctionRunner(opts: FunctionRunnerOptions): Promise<FunctionRunner> {
  const logger = opts.logger ?? silentLogger;
  const maxBody = opts.maxBodyBytes ?? CE_MAX_BODY_BYTES;
  const servers = new Map<string, Server>();
  const urls: Record<string, string> = {};
  const counts = new Map<string, number>();
  const timers: Cron[] = [];

  /** Calls `main` and converts its result; a response body over the limit becomes a 400, as on the platform. */
  const invoke = async (fn: RunnerFunction, params: CeParams): Promise<HttpResponse> => {
    counts.set(fn.name, (counts.get(fn.name) ?? 0) + 1);
    const response = fromCeResult(await fn.main(params));
    const size = Buffer.byteLength(response.body);
    if (size > maxBody) {
      logger.warn('function-runner.response-too-large', { function: fn.name, bytes: size, limit: maxBody });
      return platformError(400, `response body of ${size} bytes exceeds the ${maxBody} byte limit`);
    }
    return response;
  };

  const handle = async (fn: RunnerFunction, req: IncomingMessage, res: ServerResponse) => {
    const activationId = randomUUID();
    try {
      const url = new URL(req.url ?? '/', 'http://localhost');
      const body = await readBody(req, maxBody);
      if (body === 'too-large') {
        return send(res, platformError(400, `request body exceeds the ${maxBody} byte limit`));
      }
      if (mediaTypeOf(req.headers['content-type']) === 'multipart/form-data') {
        return send(res, platformError(415, 'multipart/form-data is not supported'));
      }
      const params = toCeParams({
        method: req.method ?? 'GET',
        path: url.pathname,
        rawQuery: url.search,
        headers: req.headers,
        body,
      });
      // Code Engine refuses requests that try to set its own fields (query or JSON body keys).
      if ([...url.searchParams.keys()].some((k) => k.startsWith('__ce_')) || jsonKeysReserved(body)) {
        return send(res, platformError(400, 'parameters starting with __ce_ are reserved'));
      }
      send(res, await invoke(fn, params), {
        'x-faas-activation-id': activationId,
        'x-faas-actionstatus': 'success',
      });
    } catch (err) {
      logger.error('function-runner.crash', {
        function: fn.name,
        error: err instanceof Error ? `${err.name}: ${err.message}` : String(err),
      });
      send(res, platformError(502, 'function failed'), {
        'x-faas-activation-id': activationId,
        'x-faas-actionstatus': 'application error',
      });
    }
  };

  for (const fn of opts.functions) {
    const server = createServer((req, res) => void handle(fn, req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    servers.set(fn.name, server);
    urls[fn.name] = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  const url = (name: string): string => {
    const u = urls[name];
    if (!u) throw new Error(`no function named ${name}`);
    return u;
  };

  const fireCron = async (name: string, index = 0): Promise<HttpResponse> => {
    const fn = opts.functions.find((f) => f.name === name);
    const schedule = fn?.schedules?.[index];
    if (!fn || !schedule) throw new Error(`function ${name} has no schedule #${index}`);
    const isText = typeof schedule.data === 'string';
    const data = schedule.data === undefined ? '' : isText ? (schedule.data as string) : JSON.stringify(schedule.data);
    if (Buffer.byteLength(data) > MAX_CRON_DATA_BYTES) throw new Error('cron data exceeds 4096 bytes');
    const subscription = schedule.name ?? `${name}-cron-${index}`;
    // A cron delivery is internal to the platform (not an HTTP request anyone can make to the function's URL).
    const params = toCronParams({
      id: randomUUID(),
      source: `/apis/v1/namespaces/local/pingsources/${subscription}`,
      time: new Date().toISOString(),
      data,
      contentType: isText || schedule.data === undefined ? 'text/plain' : 'application/json',
    });
    try {
      return await invoke(fn, params);
    } catch (err) {
      logger.error('function-runner.crash', {
        function: fn.name,
        error: err instanceof Error ? `${err.name}: ${err.message}` : String(err),
      });
      return platformError(502, 'function failed');
    }
  };

  if (opts.startCron ?? true) {
    for (const fn of opts.functions) {
      (fn.schedules ?? []).forEach((s, i) => {
        timers.push(
          new Cron(s.cron, { timezone: s.timeZone ?? 'UTC', protect: true }, async () => {
            try {
              const r = await fireCron(fn.name, i);
              logger.debug('function-runner.cron', { function: fn.name, status: r.statusCode });
            } catch (err) {
              logger.warn('function-runner.cron-failed', {
                function: fn.name,
                error: err instanceof Error ? err.message : String(err),
              });
            }
          }),
        );
      });
    }
  }

  return {
    urls,
    url,
    fireCron,
    invocations: (name) => counts.get(name) ?? 0,
    close: async () => {
      for (const t of timers) t.stop();
      await Promise.all(
        [...servers.values()].map(
          (s) =>
            new Promise<void>((resolve) => {
              s.closeAllConnections?.();
              s.close(() => resolve());
            }),
        ),
      );
    },
  };
}
