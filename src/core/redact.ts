/**
 * Second line of defence for logs and stored documents (the first is the `Sensitive`/`KeyMaterial` types): any
 * property whose name looks secret is replaced by `[REDACTED]`.
 */
const SECRET_KEY =
  /^(payload|plaintext|material|nonce|encryptednonce|iv|token|access_?token|refresh_?token|bearer|secret|.*secret|apikey|api_?key|authorization|password|private_?key|privatekeypem|cr_token|cookie|set-cookie|escrowplaintext)$/i;

export const REDACTED = '[REDACTED]';

/** True when a property of this name must never be logged. */
export function isSecretKey(name: string): boolean {
  return SECRET_KEY.test(name);
}

/** A `JSON.stringify` replacer that redacts secret-looking properties and serialises errors and bigints safely. */
export function redactingReplacer(this: unknown, key: string, value: unknown): unknown {
  if (key !== '' && isSecretKey(key) && value !== undefined && value !== null) return REDACTED;
  if (typeof value === 'bigint') return value.toString();
  // Buffer.toJSON() runs before the replacer: {type:'Buffer', data:[…]}
  if (isBufferJson(value) || value instanceof Uint8Array) return REDACTED;
  if (value instanceof Error) {
    const e = value as Error & { code?: unknown; details?: unknown };
    return { name: e.name, message: e.message, code: e.code, details: e.details };
  }
  return value;
}

/** Deep copy of `value` with secrets redacted (via JSON). */
export function redact<T>(value: T): unknown {
  return JSON.parse(JSON.stringify(value, redactingReplacer) ?? 'null');
}

function isBufferJson(v: unknown): boolean {
  return (
    typeof v === 'object' &&
    v !== null &&
    (v as { type?: unknown }).type === 'Buffer' &&
    Array.isArray((v as { data?: unknown }).data)
  );
}
