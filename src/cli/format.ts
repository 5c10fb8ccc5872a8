/** Small formatting helpers for human output. */

/** ISO-like UTC time without milliseconds, or '-' */
export function formatTime(ms: number | undefined | null): string {
  if (ms === undefined || ms === null || !Number.isFinite(ms)) return '-';
  return new Date(ms)
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d{3}Z$/, 'Z');
}

/** First 8 characters of an id (versions, runs), enough to tell them apart on screen. */
export function short(id: string | undefined | null, n = 8): string {
  if (!id) return '-';
  return id.length > n ? id.slice(0, n) : id;
}
