/**
 * What a benchmark reads of a process it started, from /proc (Linux), and
 * the idle connections it holds open while it reads.
 *
 * @module
 */

/**
 * CPU seconds (user + system, reaped children included) of a process, and
 * the RSS of it and its live children (socat forks one per connection).
 */
export function usage(pid: number): { cpu: number; rssKiB: number } {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1].split(
    " ",
  );
  const ticks = [11, 12, 13, 14].reduce((sum, i) => sum + Number(stat[i]), 0);
  const rssOf = (id: string) => {
    try {
      return Number(
        /VmRSS:\s+(\d+)/.exec(Deno.readTextFileSync(`/proc/${id}/status`))![1],
      );
    } catch {
      return 0;
    }
  };
  const children = Deno.readTextFileSync(`/proc/${pid}/task/${pid}/children`)
    .trim()
    .split(/\s+/).filter(Boolean);
  const rss = rssOf(String(pid)) +
    children.reduce((sum, child) => sum + rssOf(child), 0);
  return { cpu: ticks / 100, rssKiB: rss };
}

/**
 * Opens `count` echoed connections to `port` in a peer process that holds
 * them until its stdin closes; disposing of it closes them.
 *
 * @param port Where to connect.
 * @param count How many connections.
 */
export async function holdIdle(
  port: number,
  count: number,
): Promise<AsyncDisposable> {
  const holder = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("./peer.ts", import.meta.url).pathname,
      "idle",
      String(port),
      String(count),
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = holder.stdout.pipeThrough(new TextDecoderStream())
    .getReader();
  while (!((await reader.read()).value ?? "").includes("ready")) {
    /* wait */
  }
  reader.releaseLock();
  return {
    async [Symbol.asyncDispose]() {
      await holder.stdin.close();
      await holder.stdout.cancel().catch(() => {});
      await holder.status;
    },
  };
}
