/**
 * Tunnel setups per second through squid with NTLM authentication: a new
 * `CONNECT` tunnel per connection (the NTLM handshake each time) against a
 * stream of a session to `serve` that was set up once through the same
 * squid (`mux=on`, the default), the same over the poll transport
 * (`transport=poll`), and against one v1 WebSocket per tunnel through it
 * (`mux=off resume=off`). Each setup is: connect to the local
 * port, send one byte, read its echo, close. Repetitions are interleaved;
 * prints setups per second and the ratio of muxed to CONNECT setups.
 *
 * `--delay MS` puts a relay in front of squid that holds every chunk for
 * MS milliseconds each way, and a new connection's first bytes one round
 * trip longer for the TCP handshake: a proxy at a distance, as a corporate
 * one is, rather than on loopback where its round trips cost next to
 * nothing.
 *
 * Then memory per idle tunnel of each kind: in a fresh tool process per
 * kind, the slope of its RSS (and serve's, for the kinds that use it)
 * between `--idle FROM,TO` open, echoed, idle tunnels, each count read
 * after the processes have settled.
 *
 *   deno run -A bench/mux_bench.ts [--reps 3] [--seconds 2] [--delay 0] [--idle 100,600]
 *
 * Needs squid (with ntlm_fake_auth) and python3-websockets' neighbours of
 * tests/_util. Stops everything it started.
 */

import { parseArgs } from "node:util";
import {
  connect,
  freePort,
  readExactly,
  startEchoServer,
  startServer,
  writeAll,
} from "../tests/_util/net.ts";
import { startSquidWithNtlm } from "../tests/_util/proxies.ts";
import { ALICE_TOKEN, startServe } from "../tests/_util/serve.ts";
import { spawnRun } from "../tests/_util/tool.ts";
import { holdIdle, usage } from "./proc.ts";

const { values } = parseArgs({
  options: {
    reps: { type: "string", default: "3" },
    seconds: { type: "string", default: "2" },
    delay: { type: "string", default: "0" },
    idle: { type: "string", default: "100,600" },
  },
});
const [IDLE_FROM, IDLE_TO] = values.idle.split(",").map(Number);
const REPS = Number(values.reps);
const SECONDS = Number(values.seconds);
const DELAY_MS = Number(values.delay);

/**
 * Copies `from` to `to`, each chunk `DELAY_MS` late, in order, and none
 * before `opened` (a time of `performance.now()`).
 */
async function delayedPipe(
  from: Deno.Conn,
  to: Deno.Conn,
  opened = 0,
): Promise<void> {
  const buffer = new Uint8Array(64 * 1024);
  let last = Promise.resolve();
  try {
    while (true) {
      const n = await from.read(buffer);
      if (n === null) break;
      const chunk = buffer.slice(0, n);
      // Every chunk arrives DELAY_MS after it was read, however many
      // came at once: a latency, not a rate.
      const due = Math.max(performance.now(), opened) + DELAY_MS;
      // A failed write (the other side closed) ends the copy quietly.
      last = last.then(async () => {
        const wait = due - performance.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        await writeAll(to, chunk);
      }).catch(() => {});
    }
    await last;
    await to.closeWrite();
  } catch { /* either side closed */ }
}

await using echo = startEchoServer();
await using squid = await startSquidWithNtlm();
await using serve = await startServe({
  args: ["--allow", `127.0.0.1:${echo.port}`],
});
await using far = startServer(async (conn) => {
  const squidConn = await Deno.connect({
    hostname: "127.0.0.1",
    port: squid.port,
  });
  // Small chunks go at once, as the tool's own sockets send them.
  conn.setNoDelay(true);
  squidConn.setNoDelay(true);
  try {
    // The tool's connect returns at once from this relay on loopback; to a
    // proxy DELAY_MS away, its TCP handshake takes a round trip before the
    // first byte can leave: its bytes go no earlier than that.
    const opened = performance.now() + 2 * DELAY_MS;
    await Promise.all([
      delayedPipe(conn, squidConn, opened),
      delayedPipe(squidConn, conn),
    ]);
  } finally {
    squidConn.close();
  }
});
const squidPort = DELAY_MS > 0 ? far.port : squid.port;
const proxy = `http://DOMAIN%5Cbench:secret@127.0.0.1:${squidPort}`;
const server = `ws://127.0.0.1:${serve.port} token=${ALICE_TOKEN}`;
const modes = {
  "CONNECT (NTLM each time)": freePort(),
  "ws v1 per tunnel": freePort(),
  "muxed stream": freePort(),
  "muxed stream, poll": freePort(),
};
const ports = Object.values(modes);
const lines = [
  `${ports[0]} 127.0.0.1 ${echo.port} ${proxy} auth=ntlm`,
  `${
    ports[1]
  } 127.0.0.1 ${echo.port} ${proxy} ${server} auth=ntlm mux=off resume=off`,
  `${ports[2]} 127.0.0.1 ${echo.port} ${proxy} ${server} auth=ntlm`,
  `${
    ports[3]
  } 127.0.0.1 ${echo.port} ${proxy} ${server} auth=ntlm transport=poll`,
];
const run = await spawnRun(lines.join("\n") + "\n");

/** One setup: connect, a byte there and back, close. */
async function setup(port: number): Promise<void> {
  const conn = await connect(port);
  try {
    await writeAll(conn, Uint8Array.of(42));
    await readExactly(conn, 1);
  } finally {
    conn.close();
  }
}

/** Setups per second through `port`, one after the other, for SECONDS. */
async function rate(port: number): Promise<number> {
  // The first setup of a muxed route opens its session: not counted.
  await setup(port);
  const started = performance.now();
  let count = 0;
  while (performance.now() - started < SECONDS * 1000) {
    await setup(port);
    count++;
  }
  return count / ((performance.now() - started) / 1000);
}

const results = new Map<string, number[]>();
for (let rep = 0; rep < REPS; rep++) {
  for (const [name, port] of Object.entries(modes)) {
    const each = results.get(name) ?? [];
    each.push(await rate(port));
    results.set(name, each);
  }
}
const median = (values: number[]) =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
console.log(
  `setups per second through squid with NTLM${
    DELAY_MS > 0 ? ` ${DELAY_MS} ms away (each way)` : ""
  } (median of ${REPS} × ${SECONDS} s, sequential):`,
);
for (const [name, each] of results) {
  console.log(`  ${name.padEnd(26)} ${median(each).toFixed(0).padStart(7)}`);
}
const connectRate = median(results.get("CONNECT (NTLM each time)")!);
const muxRate = median(results.get("muxed stream")!);
console.log(
  `muxed / CONNECT: ${(muxRate / connectRate).toFixed(2)}×`,
);
await run[Symbol.asyncDispose]();

console.log(
  `memory per idle tunnel, KiB (RSS slope between ${IDLE_FROM} and ${IDLE_TO} tunnels, fresh processes):`,
);
for (const [i, name] of Object.keys(modes).entries()) {
  // A fresh serve too, so that earlier load has not grown its heap.
  await using fresh = await startServe({
    args: ["--allow", `127.0.0.1:${echo.port}`],
  });
  const port = freePort();
  const line = lines[i].replace(/^\d+/, String(port)).replace(
    `ws://127.0.0.1:${serve.port}`,
    `ws://127.0.0.1:${fresh.port}`,
  );
  await using tool = await spawnRun(line + "\n");
  const sample = async () => {
    await new Promise((resolve) => setTimeout(resolve, 1500));
    return {
      tool: usage(tool.child.pid).rssKiB,
      serve: usage(fresh.child.pid).rssKiB,
    };
  };
  await using _low = await holdIdle(port, IDLE_FROM);
  const low = await sample();
  await using _high = await holdIdle(port, IDLE_TO - IDLE_FROM);
  const high = await sample();
  const slope = (key: "tool" | "serve") =>
    ((high[key] - low[key]) / (IDLE_TO - IDLE_FROM)).toFixed(1);
  console.log(
    `  ${name.padEnd(26)} tool ${slope("tool").padStart(6)}${
      i === 0 ? "" : `   serve ${slope("serve").padStart(6)}`
    }`,
  );
}
