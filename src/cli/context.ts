import type { ApiClient } from './apiClient.js';
import { createApiClient } from './apiClient.js';
import type { ConfigFlags, ResolvedConfig } from './config.js';
import { resolveConfig } from './config.js';
import type { Output } from './output.js';

/** What the process gives the CLI (tests inject their own). */
export interface CliIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  env: Readonly<Record<string, string | undefined>>;
  cwd: string;
  isTty: boolean;
  /** Resolves when the user asks to stop (Ctrl-C / SIGTERM). Long-running commands race it. */
  interrupted: Promise<string>;
  fetch?: typeof fetch;
}

/** Everything a command handler needs. Configuration is resolved lazily, on first use. */
export interface CliContext {
  out: Output;
  io: CliIo;
  flags: ConfigFlags;
  config(): ResolvedConfig;
  api(): ApiClient;
}

export function createContext(out: Output, io: CliIo, flags: ConfigFlags): CliContext {
  let resolved: ResolvedConfig | undefined;
  let api: ApiClient | undefined;
  const ctx: CliContext = {
    out,
    io,
    flags,
    config() {
      resolved ??= resolveConfig({ flags, env: io.env, cwd: io.cwd });
      return resolved;
    },
    api() {
      api ??= createApiClient(ctx.config().config, io.fetch);
      return api;
    },
  };
  return ctx;
}
