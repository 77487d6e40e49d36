/**
 * Which process listens on a TCP port, found the way `ss -ltnp` finds it:
 * the listening socket's inode in `/proc/net/tcp{,6}`, then the process
 * whose `/proc/<pid>/fd/*` links to `socket:[inode]`. Linux only; other
 * users' processes cannot be looked into, and Deno lets a program read
 * `/proc` only with `--allow-all`, so the answer is often "unknown".
 *
 * @module
 */

import { formatCmdline, listeningInodes, socketInode } from "./proc_net_tcp.ts";

/** A process that holds a port. */
export interface PortHolder {
  /** Its process id. */
  readonly pid: number;
  /** Its command line, shortened for a log line. */
  readonly command: string;
}

/** Most processes looked into, so that a busy machine costs a bounded time. */
const MAX_PROCESSES = 4_096;

/**
 * Finds the process that listens on `port`.
 *
 * @param port The TCP port.
 * @returns The process, or undefined when it cannot be found (not Linux,
 *   no permission, another user's process, or nobody listens any more).
 */
export async function findPortHolder(
  port: number,
): Promise<PortHolder | undefined> {
  try {
    const inodes = new Set<number>();
    for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
      const text = await Deno.readTextFile(table).catch(() => "");
      for (const inode of listeningInodes(text, port)) inodes.add(inode);
    }
    if (inodes.size === 0) return undefined;
    let seen = 0;
    for await (const process of Deno.readDir("/proc")) {
      if (!/^\d+$/.test(process.name)) continue;
      if (++seen > MAX_PROCESSES) break;
      if (await holds(process.name, inodes)) {
        const cmdline = await Deno.readTextFile(`/proc/${process.name}/cmdline`)
          .catch(() => "");
        return { pid: Number(process.name), command: formatCmdline(cmdline) };
      }
    }
  } catch {
    // No /proc, or no permission to read it: the caller says what is likely.
  }
  return undefined;
}

async function holds(pid: string, inodes: Set<number>): Promise<boolean> {
  try {
    for await (const fd of Deno.readDir(`/proc/${pid}/fd`)) {
      const link = await Deno.readLink(`/proc/${pid}/fd/${fd.name}`)
        .catch(() => "");
      const inode = socketInode(link);
      if (inode !== undefined && inodes.has(inode)) return true;
    }
  } catch {
    // Another user's process, or one that has just exited.
  }
  return false;
}
