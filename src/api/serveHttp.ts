import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { HttpRequest, HttpResponse } from '../core/index.js';
import { AppError } from '../core/index.js';
import { toErrorResponse } from './httpStatus.js';

/** A running node:http server in front of a transport-neutral handler. */
export interface HttpServerHandle {
  /** `http://host:port` */
  url: string;
  port: number;
  server: Server;
  close(): Promise<void>;
}

export interface ServeHttpOptions {
  /** Default 0: a free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Request bodies larger than this are refused with 413 before the handler runs (default 1 MB). */
  maxBodyBytes?: number;
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,100}$/;

/**
 * Serves `handler` over node:http (the dev stack and the tests; Code Engine calls the handler through
 * `src/codeengine` instead). Query parameters: the last value wins. A client's `x-request-id` is kept when it is
 * well formed, otherwise a new one is made.
 */
export async function serveHttp(
  handler: (req: HttpRequest) => Promise<HttpResponse>,
  opts: ServeHttpOptions = {},
): Promise<HttpServerHandle> {
  const host = opts.host ?? '127.0.0.1';
  const maxBodyBytes = opts.maxBodyBytes ?? 1024 * 1024;
  const server = createServer((req, res) => {
    void handle(req, res);
  });
  server.headersTimeout = 20_000;
  server.requestTimeout = 60_000;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const incomingId = req.headers['x-request-id'];
    const requestId = typeof incomingId === 'string' && REQUEST_ID.test(incomingId) ? incomingId : randomUUID();
    let response: HttpResponse;
    try {
      const body = await readBody(req, maxBodyBytes);
      const url = new URL(req.url ?? '/', 'http://localhost');
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(req.headers)) {
        if (value !== undefined) headers[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : value;
      }
      response = await handler({
        method: (req.method ?? 'GET').toUpperCase(),
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
        headers,
        ...(body.length ? { body } : {}),
        requestId,
      });
    } catch (err) {
      const { statusCode, body } = toErrorResponse(err, requestId);
      response = {
        statusCode,
        headers: { 'content-type': 'application/json; charset=utf-8', 'x-request-id': requestId },
        body: JSON.stringify(body),
      };
      if (statusCode === 413) response.headers.connection = 'close';
    }
    if (res.headersSent) return;
    res.writeHead(response.statusCode, response.headers);
    res.end(response.body);
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://${host}:${port}`,
    port,
    server,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}

function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? '0');
  if (Number.isFinite(declared) && declared > maxBytes) {
    req.resume();
    return Promise.reject(new AppError('PAYLOAD_TOO_LARGE', `The body must be at most ${maxBytes} bytes`));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on('data', (chunk: Buffer) => {
      if (failed) return;
      size += chunk.length;
      if (size > maxBytes) {
        failed = true;
        reject(new AppError('PAYLOAD_TOO_LARGE', `The body must be at most ${maxBytes} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (!failed) resolve(Buffer.concat(chunks));
    });
    req.on('error', (err) => {
      if (!failed) reject(err);
    });
  });
}
