/**
 * "Did you mean …?" for a misspelled name: the nearest of the valid ones by
 * edit distance, two letters swapped counting as one edit. Pure.
 *
 * @module
 */

/**
 * The valid name nearest to `word`, when it is near enough to be a typo:
 * at most a third of its letters apart.
 *
 * @param word What the user wrote, e.g. `idle-timout`.
 * @param names The valid names.
 * @returns e.g. `idle-timeout`, or `undefined` when none is close.
 *
 * @example
 * ```ts
 * nearest("idle-timout", ["idle-timeout", "linger-timeout"]); // "idle-timeout"
 * ```
 */
export function nearest(
  word: string,
  names: readonly string[],
): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(1, Math.floor(word.length / 3)) + 1;
  for (const name of names) {
    const distance = editDistance(word, name);
    if (distance < bestDistance) {
      best = name;
      bestDistance = distance;
    }
  }
  return best;
}

// Levenshtein distance with adjacent transpositions (optimal string
// alignment), a row at a time: `hlep` is one edit from `help`.
function editDistance(a: string, b: string): number {
  let before: number[] = [];
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(
        previous[j] + 1,
        current[j - 1] + 1,
        previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        current[j] = Math.min(current[j], before[j - 2] + 1);
      }
    }
    before = previous;
    previous = current;
  }
  return previous[b.length];
}
