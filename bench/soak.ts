/**
 * Soak run (not a test): thousands of short and long tunnels with random
 * sizes and random faults for N minutes against the real `run` command,
 * every transferred byte checked by sha256, and the tool's open file
 * descriptors and RSS compared with their baseline at the end.
 *
 *   deno task soak [--minutes 1] [--concurrency 50] [--settle 30]
 *
 * Fails unless every byte checks out, file descriptors are back to their
 * baseline and RSS is back within 16 MiB of it after the settle time. The
 * task sets MALLOC_MMAP_THRESHOLD_ as the README recommends for long runs.
 *
 * Uses squid for a proxied entry when it is installed. Loopback only.
 */

import { createHash } from "node:crypto";
import { parseArgs } from "node:util";
import { pseudoRandomChunks } from "../tests/_util/data.ts";
import {
  freePort,
  pause,
  startEchoServer,
  writeAll,
} from "../tests/_util/net.ts";
import { startSquid, type TestProcess } from "../tests/_util/proxies.ts";

const { values } = parseArgs({
  options: {
    minutes: { type: "string", default: "1" },
    concurrency: { type: "string", default: "50" },
    settle: { type: "string", default: "30" },
  },
});
const DURATION_MS = Number(values.minutes) * 60_000;
const CONCURRENCY = Number(values.concurrency);
const ROOT = new URL("..", import.meta.url).pathname;

// Echo destination: writes back what it reads, passes EOF on.
const echo = startEchoServer();

const dir = await Deno.makeTempDir({ prefix: "httptunneling-soak-" });
const statusPort = freePort();
const [direct, viaSquid, dead] = [freePort(), freePort(), freePort()];
let squid: TestProcess | undefined;
try {
  squid = await startSquid();
} catch {
  console.log("squid not installed: soaking direct tunnels only");
}
await Deno.writeTextFile(
  `${dir}/tunnels.conf`,
  `${direct} 127.0.0.1 ${echo.port}\n${dead} 127.0.0.1 ${freePort()}\n` +
    (squid
      ? `${viaSquid} 127.0.0.1 ${echo.port} 127.0.0.1 ${squid.port}\n`
      : ""),
);
const tool = new Deno.Command(Deno.execPath(), {
  args: [
    "run",
    "-A",
    `--config=${ROOT}deno.json`,
    `${ROOT}main.ts`,
    "run",
    "tunnels.conf",
    "--log",
    "soak.log",
    "--status",
    String(statusPort),
  ],
  cwd: dir,
  stdout: "null",
  stderr: "null",
}).spawn();
await pause(1500);

const procStat = () => {
  const fds = [...Deno.readDirSync(`/proc/${tool.pid}/fd`)].length;
  const rss = Number(
    /VmRSS:\s+(\d+)/.exec(
      Deno.readTextFileSync(`/proc/${tool.pid}/status`),
    )![1],
  );
  return { fds, rssKiB: rss };
};

const stats = {
  tunnels: 0,
  bytes: 0,
  verified: 0,
  faults: 0,
  mismatches: 0,
  errors: 0,
};

async function transfer(
  port: number,
  size: number,
  seed: number,
  slow: boolean,
  abort: boolean,
) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const sent = createHash("sha256");
  const got = createHash("sha256");
  const reader = (async () => {
    const buffer = new Uint8Array(65536);
    let total = 0;
    while (total < size) {
      const n = await conn.read(buffer);
      if (n === null) break;
      got.update(buffer.subarray(0, n));
      total += n;
    }
    return total;
  })();
  let written = 0;
  for (const chunk of pseudoRandomChunks(seed, size, 16384)) {
    if (abort && written > size / 2) break;
    await writeAll(conn, chunk);
    sent.update(chunk);
    written += chunk.length;
    if (slow) await pause(5);
  }
  if (abort) {
    conn.close();
    await reader.catch(() => {});
    stats.faults++;
    return;
  }
  const total = await reader;
  conn.close();
  stats.bytes += 2 * total;
  if (total === size && sent.digest("hex") === got.digest("hex")) {
    stats.verified++;
  } else stats.mismatches++;
}

async function worker(id: number, deadline: number) {
  let seed = id * 7919;
  while (Date.now() < deadline) {
    seed++;
    const r = Math.random();
    stats.tunnels++;
    try {
      if (r < 0.05) {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port: dead });
        await conn.read(new Uint8Array(1)).catch(() => {});
        conn.close();
        stats.faults++;
      } else {
        const port = squid && Math.random() < 0.4 ? viaSquid : direct;
        const long = r > 0.85;
        const size = long
          ? 1 + Math.floor(Math.random() * 4 * 1024 * 1024)
          : 1 + Math.floor(Math.random() * 65536);
        await transfer(port, size, seed, long, r > 0.8 && r < 0.85);
      }
    } catch {
      stats.errors++;
    }
  }
}

const baseline = procStat();
let peak = baseline.rssKiB;
const sampler = setInterval(() => {
  peak = Math.max(peak, procStat().rssKiB);
}, 1000);
const started = Date.now();
await Promise.all(
  Array.from(
    { length: CONCURRENCY },
    (_, i) => worker(i + 1, started + DURATION_MS),
  ),
);
const elapsed = (Date.now() - started) / 1000;
// Give the tool time to go idle: V8 gives memory back after allocation stops.
await pause(Number(values.settle) * 1000);
clearInterval(sampler);
const end = procStat();
// Where the memory is: V8's heap, or ArrayBuffers and the allocator.
const { memory } = await (await fetch(`http://127.0.0.1:${statusPort}/status`))
  .json();

console.log(
  JSON.stringify(
    {
      minutes: Number(values.minutes),
      concurrency: CONCURRENCY,
      viaSquid: Boolean(squid),
      tunnels: stats.tunnels,
      tunnelsPerSecond: Math.round(stats.tunnels / elapsed),
      verifiedTransfers: stats.verified,
      checksumMismatches: stats.mismatches,
      injectedFaults: stats.faults,
      unexpectedErrors: stats.errors,
      gibMoved: +(stats.bytes / 2 ** 30).toFixed(2),
      fds: { baseline: baseline.fds, end: end.fds },
      rssMiB: {
        baseline: +(baseline.rssKiB / 1024).toFixed(1),
        peak: +(peak / 1024).toFixed(1),
        end: +(end.rssKiB / 1024).toFixed(1),
      },
      endMemoryMiB: Object.fromEntries(
        Object.entries(memory as Record<string, number>).map((
          [key, bytes],
        ) => [key, +(bytes / 2 ** 20).toFixed(1)]),
      ),
    },
    null,
    2,
  ),
);
tool.kill("SIGTERM");
await tool.status;
await squid?.[Symbol.asyncDispose]();
await echo[Symbol.asyncDispose]();
await Deno.remove(dir, { recursive: true });
// RSS must come back to within 16 MiB of where it started.
const RSS_SLACK_KIB = 16 * 1024;
const ok = stats.mismatches === 0 && stats.errors === 0 &&
  end.fds <= baseline.fds && end.rssKiB <= baseline.rssKiB + RSS_SLACK_KIB;
console.log(ok ? "soak: OK" : "soak: FAILED");
Deno.exit(ok ? 0 : 1);
