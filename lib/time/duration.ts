/**
 * Durations as people write and read them. Pure functions.
 *
 * @module
 */

const UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/**
 * Parses a positive duration such as `10`, `10s`, `500ms`, `2m` or `1h`; a
 * bare number means seconds. Every time limit is written this way, in the
 * config and on the command line.
 *
 * @param text The duration as written.
 * @returns Milliseconds, or `undefined` when `text` is not a duration or
 *   rounds to zero.
 *
 * @example
 * ```ts
 * parseDuration("1.5s"); // 1500
 * parseDuration("0"); // undefined
 * ```
 */
export function parseDuration(text: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!match) return undefined;
  const ms = Math.round(Number(match[1]) * UNITS[match[2] ?? "s"]);
  return ms > 0 ? ms : undefined;
}

/**
 * Writes a duration the way {@link parseDuration} reads it, in the largest
 * unit that divides it, for defaults in the usage text.
 *
 * @param ms A duration in milliseconds.
 * @returns e.g. `2m`, `10s` or `500ms`.
 */
export function formatDurationSetting(ms: number): string {
  const [unit, size] =
    Object.entries(UNITS).reverse().find(([, size]) => ms % size === 0) ??
      ["ms", 1];
  return `${ms / size}${unit}`;
}

/**
 * Formats milliseconds for messages: `250 ms`, `10 s`, `1.5 s`.
 *
 * @param ms A duration in milliseconds.
 * @returns The duration in the unit a person reads most easily.
 */
export function formatDuration(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${+(ms / 1000).toFixed(1)} s`;
}
