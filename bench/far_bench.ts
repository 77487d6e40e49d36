/**
 * The far end's cost: httptunneling through squid to a target, once as a
 * plain CONNECT tunnel and once over a `wss://` hop to `serve` behind the
 * same squid (client → tool → squid → serve → target), in the same run with
 * interleaved repetitions. Prints medians, the ratio wss ÷ CONNECT, and what
 * the wss hop adds to a tunnel's setup, and writes bench/results/far.md and
 * far.json.
 *
 *   deno task bench:far [--reps 3] [--seconds 5] [--megabytes 512]
 *
 * Rows (bench/peer.ts modes, each peer its own process):
 * - `stream`: one stream of `--megabytes` MiB in 256 KiB writes to a sink,
 *   until the sink's close comes back through the tunnel, Gbit/s.
 * - `setups8`, `setups1`: tunnel setups per second, 8 concurrent and one at
 *   a time: connect to the tool, 1 byte echoed from the target, close.
 *
 * One tool process (run as `deno task start` runs it, `--log-level
 * warning`) serves both routes, on two ports; one squid and one serve
 * (TLS with a test CA, `--log-level info`, its default) carry them. Needs squid and
 * openssl from Debian. Stops everything it started and removes its
 * temporary directories.
 */

import { parseArgs } from "node:util";
import { freePort, waitPort, within } from "../tests/_util/net.ts";
import { startSquid } from "../tests/_util/proxies.ts";
import {
  ALICE_TOKEN,
  SERVE_TLS_ARGS,
  serveCertificates,
  startServe,
} from "../tests/_util/serve.ts";
import { ROOT } from "../tests/_util/tool.ts";

const { values } = parseArgs({
  options: {
    reps: { type: "string", default: "3" },
    seconds: { type: "string", default: "5" },
    megabytes: { type: "string", default: "512" },
  },
});
const REPS = Number(values.reps);
const SECONDS = Number(values.seconds);
const BYTES = Number(values.megabytes) * 1024 * 1024;
const PEER = `${ROOT}bench/peer.ts`;
const decoder = new TextDecoder();

/** Runs a peer.ts mode to its end and returns its JSON result. */
async function peer(args: string[]): Promise<Record<string, number>> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", PEER, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  try {
    const { code, stdout, stderr } = await within(
      child.output(),
      (SECONDS + 120) * 1000,
      `peer ${args[0]}`,
    );
    const last = decoder.decode(stdout).trim().split("\n").at(-1);
    if (code !== 0 || !last) {
      throw new Error(`peer ${args[0]} failed: ${decoder.decode(stderr)}`);
    }
    return JSON.parse(last);
  } finally {
    try {
      child.kill("SIGKILL");
    } catch { /* ended */ }
  }
}

/** A peer.ts server (echo or sink) on a free port, until disposed. */
async function peerServer(mode: "echo" | "sink") {
  const port = freePort();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", PEER, mode, String(port)],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  await waitPort(port, 20_000, `peer ${mode}`);
  return {
    port,
    async [Symbol.asyncDispose]() {
      try {
        child.kill("SIGKILL");
      } catch { /* ended */ }
      await child.status;
    },
  };
}

/** httptunneling `run` on `config`, in `dir`, as `deno task start` runs it. */
async function startRun(dir: string, config: string, ports: number[]) {
  await Deno.writeTextFile(`${dir}/far.conf`, config);
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      "--allow-ffi",
      `--config=${ROOT}deno.json`,
      `${ROOT}main.ts`,
      "run",
      "far.conf",
      "--log",
      "far.log",
      "--log-level",
      "warning",
    ],
    cwd: dir,
    env: { MALLOC_MMAP_THRESHOLD_: "131072" },
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch { /* ended */ }
    await child.status;
  };
  try {
    for (const port of ports) await waitPort(port, 20_000, "httptunneling");
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    log: () => Deno.readTextFile(`${dir}/far.log`).catch(() => ""),
    [Symbol.asyncDispose]: stop,
  };
}

const median = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted.length ? sorted[Math.floor(sorted.length / 2)] : NaN;
};
const fmt = (value: number) =>
  Number.isNaN(value)
    ? "–"
    : value >= 100
    ? value.toFixed(0)
    : value.toFixed(2);

function markdownTable(rows: string[][]): string {
  const widths = rows[0].map((_, i) =>
    Math.max(3, ...rows.map((row) => row[i].length))
  );
  const line = (row: string[]) =>
    `| ${row.map((text, i) => text.padEnd(widths[i])).join(" | ")} |`;
  return [
    line(rows[0]),
    line(widths.map((width) => "-".repeat(width))),
    ...rows.slice(1).map(line),
  ].join("\n");
}

const ROUTES = ["connect", "wss"] as const;
type Route = typeof ROUTES[number];
const ROWS = [
  { key: "stream", label: "1 stream, Gbit/s" },
  { key: "setups8", label: "setups/s, 8 concurrent" },
  { key: "setups1", label: "setups/s, one at a time" },
] as const;
type Row = typeof ROWS[number]["key"];

const dir = await Deno.makeTempDir({ prefix: "httptunneling-far-bench-" });
const samples = new Map<string, number[]>();
try {
  await using certs = await serveCertificates();
  await using sink = await peerServer("sink");
  await using echo = await peerServer("echo");
  await using squid = await startSquid();
  await using serve = await startServe({
    files: certs.files,
    args: [
      ...SERVE_TLS_ARGS,
      // serve's default: a line per tunnel opened and closed.
      "--log-level",
      "info",
      "--allow",
      `127.0.0.1:${sink.port},127.0.0.1:${echo.port}`,
    ],
  });
  await Deno.copyFile(certs.ca, `${dir}/ca.pem`);
  const ports: Record<Route, { sink: number; echo: number }> = {
    connect: { sink: freePort(), echo: freePort() },
    wss: { sink: freePort(), echo: freePort() },
  };
  const via: Record<Route, string> = {
    connect: `http://127.0.0.1:${squid.port}`,
    wss:
      `http://127.0.0.1:${squid.port} wss://127.0.0.1:${serve.port} token=${ALICE_TOKEN} ca-file=ca.pem`,
  };
  const config = ROUTES.flatMap((route) => [
    `${ports[route].sink} 127.0.0.1 ${sink.port} ${via[route]}`,
    `${ports[route].echo} 127.0.0.1 ${echo.port} ${via[route]}`,
  ]).join("\n") + "\n";
  await using tool = await startRun(
    dir,
    config,
    ROUTES.flatMap((route) => [ports[route].sink, ports[route].echo]),
  );

  const measure = async (row: Row, route: Route): Promise<number> => {
    const { sink, echo } = ports[route];
    switch (row) {
      case "stream":
        return (await peer(["stream", String(sink), String(BYTES)])).gbps;
      case "setups8":
        return (await peer(["setups", String(echo), String(SECONDS), "8"]))
          .perSecond;
      case "setups1":
        return (await peer(["setups", String(echo), String(SECONDS), "1"]))
          .perSecond;
    }
  };
  // Warm-up, not recorded: the JIT has optimized both routes' code.
  for (const route of ROUTES) {
    await peer(["setups", String(ports[route].echo), "1", "8"]);
    await peer(["stream", String(ports[route].sink), String(64 << 20)]);
  }
  for (let rep = 0; rep < REPS; rep++) {
    // Interleave: each repetition starts with the other route.
    const order = rep % 2 ? [...ROUTES].reverse() : [...ROUTES];
    for (const row of ROWS) {
      for (const route of order) {
        const value = await measure(row.key, route);
        const key = `${row.key}/${route}`;
        samples.set(key, [...samples.get(key) ?? [], value]);
        console.error(
          `rep ${rep + 1}/${REPS} ${row.key} ${route}: ${fmt(value)}`,
        );
      }
    }
  }
  const logged = (await tool.log()).split("\n").filter(Boolean);

  const table: string[][] = [[
    "",
    "CONNECT through squid",
    "wss:// through squid to serve",
    "wss ÷ CONNECT",
  ]];
  const rows = ROWS.map((row) => {
    const medians = Object.fromEntries(
      ROUTES.map((
        route,
      ) => [route, median(samples.get(`${row.key}/${route}`)!)]),
    ) as Record<Route, number>;
    table.push([
      row.label,
      fmt(medians.connect),
      fmt(medians.wss),
      fmt(medians.wss / medians.connect),
    ]);
    return {
      row: row.key,
      label: row.label,
      medians,
      samples: Object.fromEntries(
        ROUTES.map((route) => [route, samples.get(`${row.key}/${route}`)]),
      ),
    };
  });
  const setupMs = (route: Route) =>
    1000 / median(samples.get(`setups1/${route}`)!);
  const added = setupMs("wss") - setupMs("connect");
  const lines = [
    markdownTable(table),
    "",
    `A setup one at a time takes ${
      fmt(setupMs("connect"))
    } ms through squid and ${fmt(setupMs("wss"))} ms over wss:// (${
      fmt(added)
    } ms more: TLS with serve, the upgrade, and serve's connect to the target).`,
    "",
    `Medians of ${REPS} interleaved repetitions, ${SECONDS} s per setup run, ${
      BYTES / 1048576
    } MiB per stream, on ${Deno.build.target}, ${navigator.hardwareConcurrency} cores; client, tool, squid, serve and target each a process on this machine.`,
    ...(logged.length
      ? [
        "",
        `httptunneling logged ${logged.length} warning or error lines; the first: \`${
          logged[0]
        }\``,
      ]
      : []),
  ];
  const markdown = lines.join("\n") + "\n";
  console.log(markdown);
  await Deno.mkdir(`${ROOT}bench/results`, { recursive: true });
  await Deno.writeTextFile(`${ROOT}bench/results/far.md`, markdown);
  await Deno.writeTextFile(
    `${ROOT}bench/results/far.json`,
    JSON.stringify(
      {
        settings: {
          reps: REPS,
          seconds: SECONDS,
          streamBytes: BYTES,
          target: Deno.build.target,
          cores: navigator.hardwareConcurrency,
        },
        rows,
        setupMs: { connect: setupMs("connect"), wss: setupMs("wss") },
        httptunnelingLog: logged.slice(0, 3),
      },
      null,
      2,
    ) + "\n",
  );
} finally {
  await Deno.remove(dir, { recursive: true });
}
