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

const freePort = () => {
  using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  return l.addr.port;
};
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

// Echo destination: writes back what it reads, passes EOF on.
const echo = Deno.listen({ hostname: "127.0.0.1", port: 0 });
async function serveEcho(conn: Deno.Conn) {
  const buffer = new Uint8Array(65536);
  try {
    while (true) {
      const n = await conn.read(buffer);
      if (n === null) break;
      for (let off = 0; off < n;) {
        off += await conn.write(buffer.subarray(off, n));
      }
    }
    await conn.closeWrite();
  } catch { /* the client went away */ }
  conn.close();
}
(async () => {
  for await (const conn of echo) serveEcho(conn);
})().catch(() => {});

const dir = await Deno.makeTempDir({ prefix: "httptunneling-soak-" });
await Deno.chmod(dir, 0o777);
const statusPort = freePort();
const [direct, viaSquid, dead, squidPort] = [
  freePort(),
  freePort(),
  freePort(),
  freePort(),
];
let squid: Deno.ChildProcess | undefined;
try {
  await Deno.writeTextFile(
    `${dir}/squid.conf`,
    `http_port 127.0.0.1:${squidPort}\npid_filename ${dir}/squid.pid\ncache_log ${dir}/cache.log\naccess_log none\ncache deny all\nshutdown_lifetime 0 seconds\nacl lo src 127.0.0.0/8\nhttp_access allow lo\nhttp_access deny all\n`,
  );
  squid = new Deno.Command("squid", {
    args: ["-N", "-f", `${dir}/squid.conf`],
    stdout: "null",
    stderr: "null",
  }).spawn();
} catch {
  console.log("squid not installed: soaking direct tunnels only");
}
await Deno.writeTextFile(
  `${dir}/tunnels.conf`,
  `${direct} 127.0.0.1 ${echo.addr.port}\n${dead} 127.0.0.1 ${freePort()}\n` +
    (squid
      ? `${viaSquid} 127.0.0.1 ${echo.addr.port} 127.0.0.1 ${squidPort}\n`
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

function* chunks(seed: number, total: number) {
  let state = seed >>> 0 || 1;
  for (let done = 0; done < total; done += 16384) {
    const chunk = new Uint8Array(Math.min(16384, total - done));
    for (let i = 0; i < chunk.length; i++) {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      chunk[i] = state & 0xff;
    }
    yield chunk;
  }
}

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
  for (const chunk of chunks(seed, size)) {
    if (abort && written > size / 2) break;
    for (let off = 0; off < chunk.length;) {
      off += await conn.write(chunk.subarray(off));
    }
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
if (squid) {
  squid.kill("SIGKILL");
  await squid.status;
}
echo.close();
await Deno.remove(dir, { recursive: true });
// RSS must come back to within 16 MiB of where it started.
const RSS_SLACK_KIB = 16 * 1024;
const ok = stats.mismatches === 0 && stats.errors === 0 &&
  end.fds <= baseline.fds && end.rssKiB <= baseline.rssKiB + RSS_SLACK_KIB;
console.log(ok ? "soak: OK" : "soak: FAILED");
Deno.exit(ok ? 0 : 1);
