/**
 * What changes between two sets of entries, keyed by source address.
 * Pure: no I/O.
 *
 * @module
 */

import { sourceKey, type TunnelEntry } from "./entry.ts";

/** The difference between the running entries and a new config. */
export interface ConfigDiff {
  /** Entries whose source is new. */
  readonly added: TunnelEntry[];
  /** Running entries whose source is gone. */
  readonly removed: TunnelEntry[];
  /** New versions of entries whose source stays but whose route or options changed. */
  readonly changed: TunnelEntry[];
  /** Entries that stay as they are (new versions, for their line numbers). */
  readonly unchanged: TunnelEntry[];
}

/**
 * Compares the running entries with a new config's.
 *
 * @param running The entries in force.
 * @param next The entries of the new config.
 * @returns Which entries to add, remove, change and leave alone.
 */
export function diffEntries(
  running: readonly TunnelEntry[],
  next: readonly TunnelEntry[],
): ConfigDiff {
  const before = new Map(running.map((entry) => [sourceKey(entry), entry]));
  const nextKeys = new Set(next.map(sourceKey));
  const diff: ConfigDiff = {
    added: [],
    removed: running.filter((entry) => !nextKeys.has(sourceKey(entry))),
    changed: [],
    unchanged: [],
  };
  for (const entry of next) {
    const old = before.get(sourceKey(entry));
    if (old === undefined) diff.added.push(entry);
    else if (sameTarget(old, entry)) diff.unchanged.push(entry);
    else diff.changed.push(entry);
  }
  return diff;
}

// Everything but the line number: an entry that only moved is unchanged.
function sameTarget(a: TunnelEntry, b: TunnelEntry): boolean {
  return JSON.stringify({ ...a, line: 0 }) ===
    JSON.stringify({ ...b, line: 0 });
}
