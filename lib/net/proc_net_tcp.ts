/**
 * Reads the Linux kernel's socket tables, `/proc/net/tcp` and
 * `/proc/net/tcp6`, as `ss` does: one line per socket, addresses in hex.
 * Pure parsing, no I/O; `port_holder.ts` reads the files.
 *
 * @module
 */

/** One socket of a `/proc/net/tcp{,6}` table. */
export interface ProcSocket {
  /** The local port. */
  readonly port: number;
  /** The kernel's TCP state; `0A` is LISTEN. */
  readonly state: string;
  /** The owner's user id. */
  readonly uid: number;
  /** The socket's inode, what `/proc/<pid>/fd/*` links to as `socket:[inode]`. */
  readonly inode: number;
}

/** The state column's value for a listening socket (`TCP_LISTEN`). */
export const TCP_LISTEN = "0A";

/**
 * Parses one line of `/proc/net/tcp` or `/proc/net/tcp6`.
 *
 * @param line e.g. `0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000  0 12345 1 …`.
 * @returns The socket, or undefined for the header line and anything else
 *   that is not a socket row.
 * @example
 * ```ts
 * parseProcNetTcpLine("0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000 1000 0 12345");
 * // { port: 8080, state: "0A", uid: 1000, inode: 12345 }
 * ```
 */
export function parseProcNetTcpLine(line: string): ProcSocket | undefined {
  const fields = line.trim().split(/\s+/);
  if (fields.length < 10 || !/^\d+:$/.test(fields[0])) return undefined;
  // The port is printed in host order, so it reads the same on every
  // architecture; only the address's bytes would not.
  const local = /^[0-9A-Fa-f]+:([0-9A-Fa-f]{4})$/.exec(fields[1]);
  if (!local || !/^[0-9A-Fa-f]{2}$/.test(fields[3])) return undefined;
  if (!/^\d+$/.test(fields[7]) || !/^\d+$/.test(fields[9])) return undefined;
  return {
    port: parseInt(local[1], 16),
    state: fields[3].toUpperCase(),
    uid: Number(fields[7]),
    inode: Number(fields[9]),
  };
}

/**
 * The inodes of the sockets listening on `port` in a socket table.
 *
 * @param table The text of `/proc/net/tcp` or `/proc/net/tcp6`.
 * @param port The local port.
 * @returns Their inodes; 0 (a socket the kernel hides) is left out.
 */
export function listeningInodes(table: string, port: number): number[] {
  return table.split("\n")
    .map(parseProcNetTcpLine)
    .filter((socket): socket is ProcSocket =>
      socket !== undefined && socket.port === port &&
      socket.state === TCP_LISTEN && socket.inode !== 0
    )
    .map((socket) => socket.inode);
}

/**
 * The inode a `/proc/<pid>/fd/N` link names when it is a socket.
 *
 * @param link The link's target, e.g. `socket:[12345]`.
 * @returns The inode, or undefined for files, pipes and the like.
 */
export function socketInode(link: string): number | undefined {
  const match = /^socket:\[(\d+)\]$/.exec(link);
  return match ? Number(match[1]) : undefined;
}

/**
 * A process's command line from `/proc/<pid>/cmdline`, for a log line:
 * arguments joined by spaces, control characters as `?`, at most `max`
 * characters.
 *
 * @param raw The file's text: arguments each ended by a NUL.
 * @param max The most characters kept; longer ones end in `…`.
 * @returns e.g. `python3 -c import socket …`.
 */
export function formatCmdline(raw: string, max = 120): string {
  const words = raw.split("\0").filter((word) => word !== "");
  // deno-lint-ignore no-control-regex
  const line = words.join(" ").replace(/[\x00-\x1f\x7f]/g, "?");
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}
