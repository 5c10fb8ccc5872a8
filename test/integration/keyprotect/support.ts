/**
 * Test support for the Key Protect client integration tests: a recording (and optionally rewriting) HTTP proxy
 * placed between the client and the emulator, a log collector, and helpers. The proxy is a real HTTP hop; the
 * emulator decides every outcome.
 */
import { randomBytes } from 'node:crypto';
import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { KeyInfo, KeyProtectPort, KeyRef } from '../../../src/app/index.js';
import { createJsonLogger, cryptoRandom, systemClock } from '../../../src/app/index.js';
import type { InstanceId, Logger, RegionId } from '../../../src/core/index.js';
import { KeyMaterial } from '../../../src/core/index.js';
import {
  authenticatorFromConfig,
  createKeyProtectClient,
  type KeyProtectClientOptions,
} from '../../../src/keyprotect/index.js';
import { type EmulatorStack, startEmulatorStack } from '../../../src/local/kp-emulator/index.js';
import { testTokenKeyPairs } from '../../support/tokenKeys.js';

export interface Exchange {
  method: string;
  path: string;
  status: number;
  requestBody: string;
  responseBody: string;
}

export interface ProxyHooks {
  /**
   * Answers a request without forwarding it — only to simulate what the emulator does not model (e.g. an instance
   * without import tokens).
   */
  answer?: (req: { method: string; path: string }) => { status: number; body: Buffer } | undefined;
  /** Rewrites a request body before it is forwarded. */
  onRequest?: (req: { method: string; path: string; body: Buffer }) => Buffer | undefined;
  /**
   * Runs once the upstream answered, before the client sees it; may return a rewritten body.
   */
  onResponse?: (
    req: { method: string; path: string },
    res: { status: number; body: Buffer },
  ) => Buffer | undefined | Promise<Buffer | undefined>;
}

export interface TapProxy {
  url: string;
  exchanges: Exchange[];
  hooks: ProxyHooks;
  /** Requests matching `method` and a path regex. */
  count(method: string, path: RegExp): number;
  close(): Promise<void>;
}

/** Starts a proxy on 127.0.0.1:0 that forwards to `target`, records every exchange and applies `hooks`. */
export async function startTapProxy(target: string): Promise<TapProxy> {
  const upstream = new URL(target);
  const exchanges: Exchange[] = [];
  const proxy: TapProxy = {
    url: '',
    exchanges,
    hooks: {},
    count: (method, path) => exchanges.filter((e) => e.method === method && path.test(e.path)).length,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const method = req.method ?? 'GET';
      const path = req.url ?? '/';
      let body: Buffer = Buffer.concat(chunks);
      body = proxy.hooks.onRequest?.({ method, path, body }) ?? body;
      const answer = proxy.hooks.answer?.({ method, path });
      if (answer) {
        exchanges.push({ method, path, status: answer.status, requestBody: body.toString('utf8'), responseBody: '' });
        res.writeHead(answer.status, { 'content-type': 'application/json' });
        res.end(answer.body);
        return;
      }
      const headers: IncomingHttpHeaders = { ...req.headers, host: upstream.host };
      delete headers['accept-encoding'];
      headers['content-length'] = String(body.length);
      const out = httpRequest({ host: upstream.hostname, port: upstream.port, method, path, headers }, (upRes) => {
        const upChunks: Buffer[] = [];
        upRes.on('data', (c: Buffer) => upChunks.push(c));
        upRes.on('end', async () => {
          const status = upRes.statusCode ?? 502;
          let resBody: Buffer = Buffer.concat(upChunks);
          resBody = (await proxy.hooks.onResponse?.({ method, path }, { status, body: resBody })) ?? resBody;
          exchanges.push({
            method,
            path,
            status,
            requestBody: body.toString('utf8'),
            responseBody: resBody.toString('utf8'),
          });
          const resHeaders = { ...upRes.headers };
          if (resBody.length || resHeaders['content-length']) resHeaders['content-length'] = String(resBody.length);
          res.writeHead(status, resHeaders);
          res.end(resBody);
        });
      });
      out.on('error', () => {
        // the upstream dropped the connection: drop ours too, as a real network hop would
        exchanges.push({ method, path, status: 0, requestBody: body.toString('utf8'), responseBody: '' });
        req.socket.destroy();
      });
      out.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return proxy;
}

/** A debug-level JSON logger whose lines are kept in `lines`. */
export function collectingLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  return { lines, logger: createJsonLogger({ level: 'debug', write: (line) => lines.push(line) }) };
}

/** Fresh 32-byte material plus its hex and base64 forms (kept by the tests to search logs for). */
export function newMaterial(secrets?: string[]): { material: KeyMaterial; raw: Buffer } {
  const raw = randomBytes(32);
  secrets?.push(raw.toString('hex'), raw.toString('base64'), raw.toString('base64url'));
  return { material: KeyMaterial.fromBytes(raw), raw };
}

/** Replaces one JSON field of a body (used to tamper with requests and responses). */
export function rewriteJson(body: Buffer, edit: (json: Record<string, unknown>) => void): Buffer {
  const json = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
  edit(json);
  return Buffer.from(JSON.stringify(json));
}

/** Flips one bit in the middle of a base64 value. */
export function flipBase64(value: string): string {
  const bytes = Buffer.from(value, 'base64');
  const i = Math.floor(bytes.length / 2);
  bytes[i] = (bytes[i] ?? 0) ^ 0x01;
  return bytes.toString('base64');
}

export const HOUR_MS = 3_600_000;

export interface ClientStack {
  stack: EmulatorStack;
  proxies: Record<string, TapProxy>;
  kp: KeyProtectPort;
  log: { logger: Logger; lines: string[] };
  instance(region: RegionId): InstanceId;
  refOf(region: RegionId, key: KeyInfo): KeyRef;
  /** Another client on the same proxies (e.g. other options), sharing the log. */
  client(overrides?: Partial<KeyProtectClientOptions>): KeyProtectPort;
  close(): Promise<void>;
}

/**
 * Emulator + local IAM for `regions`, one recording proxy per region, and a client authenticated with the
 * `lockstep` service id's API key through IAM.
 */
export async function startClientStack(
  regions: RegionId[],
  opts: { client?: Partial<KeyProtectClientOptions> } = {},
): Promise<ClientStack> {
  const stack = await startEmulatorStack({ regions, tokenKeyPairs: testTokenKeyPairs() });
  const proxies: Record<string, TapProxy> = {};
  for (const region of regions) proxies[region] = await startTapProxy(stack.kp.regions[region]!.url);
  const log = collectingLogger();
  const client = (overrides: Partial<KeyProtectClientOptions> = {}) =>
    createKeyProtectClient({
      endpoints: Object.fromEntries(regions.map((r) => [r, proxies[r]!.url])),
      authenticator: authenticatorFromConfig({
        kind: 'iam',
        apiKey: stack.iam.apiKeyFor('lockstep'),
        iamUrl: stack.iam.url,
      }),
      random: cryptoRandom,
      clock: systemClock,
      logger: log.logger,
      ...opts.client,
      ...overrides,
    });
  const instance = (region: RegionId) => stack.kp.regions[region]!.instances[0] as InstanceId;
  return {
    stack,
    proxies,
    kp: client(),
    log,
    instance,
    refOf: (region, key) => ({ region, instanceId: instance(region), keyId: key.id }),
    client,
    async close() {
      await Promise.all(Object.values(proxies).map((p) => p.close()));
      await stack.close();
    },
  };
}
