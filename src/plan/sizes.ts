// Human sizes ("2GB", "512 MiB") and durations ("7d", "86400") as written in a stack config.

const SIZE_UNITS: Record<string, number> = {
  b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40,
  k: 1e3, m: 1e6, g: 1e9, t: 1e12,
};

/** Bytes from a non-negative integer or a string like "2GB", "1.5 GiB", "500MB"; undefined when unreadable. */
export function parseByteSize(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
  if (typeof value !== 'string') return undefined;
  const m = /^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$/.exec(value);
  if (!m) return undefined;
  const unit = SIZE_UNITS[(m[2] || 'b').toLowerCase()];
  if (unit === undefined) return undefined;
  const bytes = Math.round(Number(m[1]) * unit);
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

const DURATION_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };

/** Seconds from a non-negative integer or a string like "7d", "12h", "3600s"; undefined when unreadable. */
export function parseDurationSeconds(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
  if (typeof value !== 'string') return undefined;
  const m = /^\s*([0-9]+)\s*([smhdw]?)\s*$/.exec(value);
  if (!m) return undefined;
  const seconds = Number(m[1]) * DURATION_UNITS[m[2] || 's']!;
  return Number.isSafeInteger(seconds) ? seconds : undefined;
}
