/**
 * The IBM SDK core traces every HTTP request and response with its body when `NODE_DEBUG=axios` is set or `DEBUG`
 * enables the `ibm-cloud-sdk-core:debug` namespace (read when the SDK loads: ibm-cloud-sdk-core
 * `lib/get-new-logger.js`, `lib/request-wrapper.js`). Its redaction only covers fields named like keys, tokens and
 * secrets, so Key Protect `plaintext` (canary DEKs, escrowed material coming back from unwrap) and import-token
 * `nonce` values would be printed. Every process that talks to Key Protect (the functions, the CLI, the dev stack)
 * refuses to start with the traces on, through this one check.
 */

const SDK_TRACE_NAMESPACE = 'ibm-cloud-sdk-core:debug';

function globMatches(pattern: string, name: string): boolean {
  const re = pattern.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*');
  return new RegExp(`^${re}$`).test(name);
}

/**
 * What is wrong with an environment that turns the IBM SDK HTTP traces on, or `undefined` when they are off.
 * Follows the `debug` package's rules: comma- or space-separated patterns, `*` wildcards, `-pattern` excludes.
 * @example
 * sdkHttpTracingProblem({ DEBUG: 'ibm-cloud-sdk-core:*' }) // 'DEBUG enables ibm-cloud-sdk-core:debug, …'
 */
export function sdkHttpTracingProblem(env: Record<string, string | undefined>): string | undefined {
  if ((env.NODE_DEBUG ?? '').split(/[\s,]+/).includes('axios')) {
    return 'NODE_DEBUG=axios turns on the IBM SDK HTTP traces, which print Key Protect request and response bodies (key material and nonces included): unset it';
  }
  const patterns = (env.DEBUG ?? '').split(/[\s,]+/).filter(Boolean);
  const on = patterns.some((p) => !p.startsWith('-') && globMatches(p, SDK_TRACE_NAMESPACE));
  const off = patterns.some((p) => p.startsWith('-') && globMatches(p.slice(1), SDK_TRACE_NAMESPACE));
  return on && !off
    ? `DEBUG enables ${SDK_TRACE_NAMESPACE}, the IBM SDK HTTP traces, which print Key Protect request and response bodies (key material and nonces included): remove it or add -ibm-cloud-sdk-core:*`
    : undefined;
}
