/**
 * Plain-text tables for the terminal: columns padded to their widest cell,
 * two spaces apart, and, given a width, the columns that may shrink cut in
 * the middle with `…`. Pure.
 *
 * @module
 */

/** Options of {@link formatTable}. */
export interface TableOptions {
  /** The most characters a line may take; unlimited when absent. */
  readonly maxWidth?: number;
  /**
   * Columns that may be narrowed to fit `maxWidth`, by index, the first
   * narrowed first. @default none
   */
  readonly shrink?: readonly number[];
}

/** The narrowest a shrunk column gets: enough to tell cells apart. */
const MIN_SHRUNK_WIDTH = 12;

/**
 * Lays out rows as aligned columns.
 *
 * @param rows The header row, then the data rows; every row as long as the
 *   header.
 * @param options The width to fit and the columns that may shrink for it.
 * @returns The lines joined with `\n`, without trailing spaces or newline.
 *
 * @example
 * ```ts
 * formatTable([["ID", "NAME"], ["1", "web"]]); // "ID  NAME\n1   web"
 * ```
 */
export function formatTable(
  rows: readonly (readonly string[])[],
  options: TableOptions = {},
): string {
  const widths = rows[0].map((_, i) =>
    Math.max(...rows.map((row) => row[i].length))
  );
  if (options.maxWidth !== undefined) {
    for (const column of options.shrink ?? []) {
      const total = widths.reduce((sum, width) => sum + width, 0) +
        2 * (widths.length - 1);
      const excess = total - options.maxWidth;
      if (excess <= 0) break;
      widths[column] = Math.max(
        Math.min(widths[column], MIN_SHRUNK_WIDTH),
        widths[column] - excess,
      );
    }
  }
  return rows.map((row) =>
    row.map((cell, i) => truncateMiddle(cell, widths[i]).padEnd(widths[i]))
      .join("  ").trimEnd()
  ).join("\n");
}

/**
 * Shortens text to `width` characters by cutting out its middle, so that
 * both ends stay readable (a route's first and last proxy).
 *
 * @param text The text.
 * @param width The most characters to keep.
 * @returns The text, or its start, `…` and its end.
 * @example
 * ```ts
 * truncateMiddle("via http://a:3128 -> http://b:3128", 20); // "via http:…p://b:3128"
 * ```
 */
export function truncateMiddle(text: string, width: number): string {
  if (text.length <= width) return text;
  if (width <= 1) return "…".slice(0, width);
  const head = Math.ceil((width - 1) / 2);
  const tail = width - 1 - head;
  return `${text.slice(0, head)}…${tail > 0 ? text.slice(-tail) : ""}`;
}
