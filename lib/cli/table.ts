/**
 * Plain-text tables for the terminal: columns padded to their widest cell,
 * two spaces apart. Pure.
 *
 * @module
 */

/**
 * Lays out rows as aligned columns.
 *
 * @param rows The header row, then the data rows; every row as long as the
 *   header.
 * @returns The lines joined with `\n`, without trailing spaces or newline.
 *
 * @example
 * ```ts
 * formatTable([["ID", "NAME"], ["1", "web"]]); // "ID  NAME\n1   web"
 * ```
 */
export function formatTable(rows: readonly (readonly string[])[]): string {
  const widths = rows[0].map((_, i) =>
    Math.max(...rows.map((row) => row[i].length))
  );
  return rows.map((row) =>
    row.map((cell, i) => cell.padEnd(widths[i])).join("  ").trimEnd()
  ).join("\n");
}
