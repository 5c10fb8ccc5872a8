const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/**
 * Parses a duration such as `90d`, `12h`, `2m`, `1h30m` or `1500ms` into milliseconds; a bare number is taken as
 * milliseconds. Returns undefined when the text is not a duration.
 */
export function parseDuration(text: unknown): number | undefined {
  if (typeof text === 'number') return Number.isSafeInteger(Math.round(text)) && text >= 0 ? text : undefined;
  if (typeof text !== 'string') return undefined;
  const s = text.trim();
  // beyond 2^53 ms (285 000 years) a duration is a typo, and Infinity would be stored as null
  const safe = (ms: number) => (Number.isSafeInteger(ms) ? ms : undefined);
  if (/^\d+$/.test(s)) return safe(Number(s));
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/gy;
  let total = 0;
  let pos = 0;
  for (let m = re.exec(s); m; m = re.exec(s)) {
    total += Number(m[1]) * UNIT_MS[m[2]!]!;
    pos = re.lastIndex;
  }
  return pos === s.length && pos > 0 ? safe(Math.round(total)) : undefined;
}

/** Formats milliseconds as a short duration (`2h 5m`, `45s`, `3d 4h`). */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return '-';
  const sign = ms < 0 ? '-' : '';
  let rest = Math.abs(Math.round(ms));
  if (rest < 1000) return `${sign}${rest}ms`;
  const parts: string[] = [];
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
    if (parts.length === 2) break;
  }
  return sign + parts.join(' ');
}
