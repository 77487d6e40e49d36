/**
 * The far end's cost: httptunneling through squid to a target, once as a
 * plain CONNECT tunnel and over a `wss://` hop to `serve` behind the same
 * squid (client → tool → squid → serve → target), as v1 (one WebSocket per
 * tunnel) and as v2 (a stream of a session), in the same run with
 * interleaved repetitions; and v2 over the poll transport (`transport=poll`:
 * plain HTTP requests through the same squid); and the TLS floor
 * (bench/tls_floor.ts: the two relays of a TLS hop through the same squid
 * and nothing else, the least any `wss://` design costs in Deno here).
 * Prints medians, the ratios to CONNECT, the CPU
 * seconds each process spent per GB of the stream row, and what the wss
 * hop adds to a tunnel's setup, and writes bench/results/far.md and
 * far.json.
 *
 *   deno task bench:far [--reps 3] [--seconds 5] [--megabytes 512]
 *     [--rows stream,rtt,setups8,setups1] [--routes connect,v1,v2,poll,floor]
 *     [--profile DIR] [--serve-ffi on|off]
 *
 * Rows (bench/peer.ts modes, each peer its own process):
 * - `stream`: one stream of `--megabytes` MiB in 256 KiB writes to a sink,
 *   until the sink's close comes back through the tunnel, Gbit/s.
 * - `rtt`: 64 bytes there and back on one open tunnel, one exchange after
 *   the other, mean microseconds (lower is better).
 * - `setups8`, `setups1`: tunnel setups per second, 8 concurrent and one at
 *   a time: connect to the tool, 1 byte echoed from the target, close.
 *
 * One tool process (run as `deno task start` runs it, `--log-level
 * warning`) serves every route, each on its own ports; one squid and one
 * serve (TLS with a test CA, `--log-level info`, its default) carry them;
 * serve runs with the compiled binary's permissions and `--allow-ffi`
 * (`--serve-ffi off`: without, so its TLS is node:tls).
 * With `--profile`, the tool and serve run with the inspector on and
 * their V8 CPU profiles of each measured route and row are written to DIR
 * (`<route>-<row>-<process>.cpuprofile`), with the busiest functions
 * printed. Needs squid and openssl from Debian. Stops everything it
 * started and removes its temporary directories.
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
import { type CpuProfiler, startProfile } from "./inspector.ts";
import { usage } from "./proc.ts";

const ROUTES = ["connect", "v1", "v2", "poll", "floor"] as const;
type Route = typeof ROUTES[number];
const ROUTE_LABELS: Record<Route, string> = {
  connect: "CONNECT through squid",
  v1: "wss:// v1 through squid to serve",
  v2: "wss:// v2 (session) through squid to serve",
  poll: "wss:// v2 over polling through squid to serve",
  floor: "TLS floor: two bare relays, TLS through squid",
};
// The routes the tool carries; the floor is bench/tls_floor.ts's.
const TOOL_ROUTES = ROUTES.filter((route) => route !== "floor");
const ROWS = [
  { key: "stream", label: "1 stream, Gbit/s" },
  { key: "rtt", label: "round trip of 64 bytes, µs (lower is better)" },
  { key: "setups8", label: "setups/s, 8 concurrent" },
  { key: "setups1", label: "setups/s, one at a time" },
] as const;
type Row = typeof ROWS[number]["key"];
type Process = "tool" | "squid" | "serve" | "sink";

const { values } = parseArgs({
  options: {
    reps: { type: "string", default: "3" },
    seconds: { type: "string", default: "5" },
    megabytes: { type: "string", default: "512" },
    rows: { type: "string", default: ROWS.map((row) => row.key).join(",") },
    routes: { type: "string", default: ROUTES.join(",") },
    profile: { type: "string" },
    "serve-ffi": { type: "string", default: "on" },
  },
});

/** The names of a comma-separated option, each one of `known`. */
function subset<T extends string>(
  option: string,
  given: string,
  known: readonly T[],
): T[] {
  const names = given.split(",").filter(Boolean);
  const unknown = names.filter((name) => !known.includes(name as T));
  if (unknown.length > 0 || names.length === 0) {
    throw new Error(
      `--${option} takes a comma-separated list of ${known.join(", ")}`,
    );
  }
  return known.filter((name) => names.includes(name));
}

const REPS = Number(values.reps);
const SECONDS = Number(values.seconds);
const BYTES = Number(values.megabytes) * 1024 * 1024;
// Exchanges per round-trip sample (after 100 not counted).
const RTT_EXCHANGES = 2000;
const PEER = `${ROOT}bench/peer.ts`;
const MEASURED_ROUTES = subset("routes", values.routes, ROUTES);
const MEASURED_ROWS = ROWS.filter((row) =>
  subset("rows", values.rows, ROWS.map((row) => row.key)).includes(row.key)
);
const PROFILE_DIR = values.profile;
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

/**
 * A Deno program (`args` to `deno run`), listening on `ports`, until
 * disposed.
 */
async function background(what: string, args: string[], ports: number[]) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...args],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  for (const port of ports) await waitPort(port, 20_000, what);
  return {
    pid: child.pid,
    async [Symbol.asyncDispose]() {
      try {
        child.kill("SIGKILL");
      } catch { /* ended */ }
      await child.status;
    },
  };
}

/** A peer.ts server (echo or sink) on a free port, until disposed. */
async function peerServer(mode: "echo" | "sink") {
  const port = freePort();
  const server = await background(
    `peer ${mode}`,
    ["-A", PEER, mode, String(port)],
    [port],
  );
  return Object.assign(server, { port });
}

/** httptunneling `run` on `config`, in `dir`, as `deno task start` runs it. */
async function startRun(
  dir: string,
  config: string,
  ports: number[],
  denoFlags: string[],
) {
  await Deno.writeTextFile(`${dir}/far.conf`, config);
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...denoFlags,
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
    pid: child.pid,
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

/** `--inspect` on a free port when profiling, else nothing. */
function inspectFlags(): { flags: string[]; port?: number } {
  if (PROFILE_DIR === undefined) return { flags: [] };
  const port = freePort();
  return { flags: [`--inspect=127.0.0.1:${port}`], port };
}

const dir = await Deno.makeTempDir({ prefix: "httptunneling-far-bench-" });
const samples = new Map<string, number[]>();
// CPU seconds per GB of the stream row, by route and process.
const cpuSamples = new Map<string, number[]>();
const add = (map: Map<string, number[]>, key: string, value: number) =>
  map.set(key, [...map.get(key) ?? [], value]);
if (PROFILE_DIR !== undefined) {
  await Deno.mkdir(PROFILE_DIR, { recursive: true });
}
try {
  await using certs = await serveCertificates();
  await using sink = await peerServer("sink");
  await using echo = await peerServer("echo");
  await using squid = await startSquid();
  const serveInspect = inspectFlags();
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
    denoFlags: [
      ...serveInspect.flags,
      ...(values["serve-ffi"] === "on" ? ["--allow-ffi"] : []),
    ],
  });
  await Deno.copyFile(certs.ca, `${dir}/ca.pem`);
  const ports = Object.fromEntries(
    ROUTES.map((route) => [route, { sink: freePort(), echo: freePort() }]),
  ) as Record<Route, { sink: number; echo: number }>;
  const wss =
    `http://127.0.0.1:${squid.port} wss://127.0.0.1:${serve.port} token=${ALICE_TOKEN} ca-file=ca.pem`;
  const via: Record<Exclude<Route, "floor">, string> = {
    connect: `http://127.0.0.1:${squid.port}`,
    v1: `${wss} mux=off resume=off`,
    v2: wss,
    poll: `${wss} transport=poll`,
  };
  const config = TOOL_ROUTES.flatMap((route) => [
    `${ports[route].sink} 127.0.0.1 ${sink.port} ${via[route]}`,
    `${ports[route].echo} 127.0.0.1 ${echo.port} ${via[route]}`,
  ]).join("\n") + "\n";
  const toolInspect = inspectFlags();
  await using tool = await startRun(
    dir,
    config,
    TOOL_ROUTES.flatMap((route) => [ports[route].sink, ports[route].echo]),
    toolInspect.flags,
  );
  const squidPid = Number(
    (await Deno.readTextFile(`${squid.dir}/squid.pid`)).trim(),
  );
  // The floor's relays: `in` where serve is, `out` where the tool is.
  const floorIn = { sink: freePort(), echo: freePort() };
  await using floorInSide = await background("tls_floor in", [
    "--allow-net",
    "--allow-read",
    ...(values["serve-ffi"] === "on" ? ["--allow-ffi"] : []),
    `${ROOT}bench/tls_floor.ts`,
    "in",
    certs.cert,
    certs.key,
    `${floorIn.sink}=${sink.port}`,
    `${floorIn.echo}=${echo.port}`,
  ], [floorIn.sink, floorIn.echo]);
  await using floorOutSide = await background("tls_floor out", [
    "--allow-net",
    "--allow-read",
    "--allow-env",
    `${ROOT}bench/tls_floor.ts`,
    "out",
    String(squid.port),
    certs.ca,
    `${ports.floor.sink}=${floorIn.sink}`,
    `${ports.floor.echo}=${floorIn.echo}`,
  ], [ports.floor.sink, ports.floor.echo]);
  const processes: Process[] = ["tool", "squid", "serve", "sink"];
  const pidsOf = (route: Route): Record<Process, number> => ({
    tool: route === "floor" ? floorOutSide.pid : tool.pid,
    squid: squidPid,
    serve: route === "floor" ? floorInSide.pid : serve.child.pid,
    sink: sink.pid,
  });

  const measure = async (row: Row, route: Route): Promise<number> => {
    const { sink, echo } = ports[route];
    switch (row) {
      case "stream": {
        const pids = pidsOf(route);
        const before = processes.map((name) => usage(pids[name]).cpu);
        const { gbps } = await peer(["stream", String(sink), String(BYTES)]);
        processes.forEach((name, i) =>
          add(
            cpuSamples,
            `${route}/${name}`,
            (usage(pids[name]).cpu - before[i]) / (BYTES / 1e9),
          )
        );
        return gbps;
      }
      case "rtt":
        return (await peer(["pingpong", String(echo), String(RTT_EXCHANGES)]))
          .meanUs;
      case "setups8":
        return (await peer(["setups", String(echo), String(SECONDS), "8"]))
          .perSecond;
      case "setups1":
        return (await peer(["setups", String(echo), String(SECONDS), "1"]))
          .perSecond;
    }
  };
  // One profile per process of the first repetition of each route and
  // row: later ones would only repeat it.
  const profiled = async (row: Row, route: Route, rep: number) => {
    if (PROFILE_DIR === undefined || rep > 0 || route === "floor") {
      return await measure(row, route);
    }
    const profilers: [string, CpuProfiler][] = [
      ["tool", await startProfile(toolInspect.port!)],
      ["serve", await startProfile(serveInspect.port!)],
    ];
    const value = await measure(row, route);
    for (const [name, profiler] of profilers) {
      const file = `${PROFILE_DIR}/${route}-${row}-${name}.cpuprofile`;
      const top = await profiler.stop(file);
      console.error(`${file}:\n  ${top.join("\n  ")}`);
    }
    return value;
  };
  // Warm-up, not recorded: the JIT has optimized every route's code.
  for (const route of MEASURED_ROUTES) {
    await peer(["setups", String(ports[route].echo), "1", "8"]);
    await peer(["stream", String(ports[route].sink), String(64 << 20)]);
  }
  for (let rep = 0; rep < REPS; rep++) {
    // Interleave: each repetition starts with another route.
    const order = MEASURED_ROUTES.map((_, i) =>
      MEASURED_ROUTES[(i + rep) % MEASURED_ROUTES.length]
    );
    for (const row of MEASURED_ROWS) {
      for (const route of order) {
        const value = await profiled(row.key, route, rep);
        add(samples, `${row.key}/${route}`, value);
        console.error(
          `rep ${rep + 1}/${REPS} ${row.key} ${route}: ${fmt(value)}`,
        );
      }
    }
  }
  const logged = (await tool.log()).split("\n").filter(Boolean);

  const compared = MEASURED_ROUTES.filter((route) => route !== "connect");
  const withConnect = MEASURED_ROUTES.includes("connect");
  const table: string[][] = [[
    "",
    ...MEASURED_ROUTES.map((route) => ROUTE_LABELS[route]),
    ...(withConnect ? compared.map((route) => `${route} ÷ CONNECT`) : []),
  ]];
  const rows = MEASURED_ROWS.map((row) => {
    const medians = Object.fromEntries(
      MEASURED_ROUTES.map((
        route,
      ) => [route, median(samples.get(`${row.key}/${route}`)!)]),
    ) as Record<Route, number>;
    table.push([
      row.label,
      ...MEASURED_ROUTES.map((route) => fmt(medians[route])),
      ...(withConnect
        ? compared.map((route) => fmt(medians[route] / medians.connect))
        : []),
    ]);
    return {
      row: row.key,
      label: row.label,
      medians,
      samples: Object.fromEntries(
        MEASURED_ROUTES.map((
          route,
        ) => [route, samples.get(`${row.key}/${route}`)]),
      ),
    };
  });
  const cpu = Object.fromEntries(
    MEASURED_ROUTES.map((route) => [
      route,
      Object.fromEntries(
        processes.map((name) => [
          name,
          median(cpuSamples.get(`${route}/${name}`) ?? []),
        ]),
      ),
    ]),
  ) as Record<Route, Record<Process, number>>;
  const cpuTable: string[][] = [
    ["CPU s per GB (1 stream)", ...processes, "total"],
    ...MEASURED_ROUTES.map((route) => [
      ROUTE_LABELS[route],
      ...processes.map((name) => fmt(cpu[route][name])),
      fmt(processes.reduce((sum, name) => sum + cpu[route][name], 0)),
    ]),
  ];
  const setupMs = (route: Route) =>
    1000 / median(samples.get(`setups1/${route}`) ?? []);
  const setupLines = MEASURED_ROWS.some((row) => row.key === "setups1") &&
      withConnect
    ? compared.map((route) =>
      `A setup one at a time takes ${
        fmt(setupMs("connect"))
      } ms through squid and ${fmt(setupMs(route))} ms over wss:// ${route} (${
        fmt(setupMs(route) - setupMs("connect"))
      } ms more: ${
        route === "floor"
          ? "TLS with the floor's in relay"
          : route === "v1"
          ? "TLS with serve, the upgrade"
          : route === "poll"
          ? "OPEN and OPENED over polling requests"
          : "OPEN and OPENED over the session"
      }, and serve's connect to the target).`
    )
    : [];
  const lines = [
    markdownTable(table),
    "",
    ...(MEASURED_ROWS.some((row) => row.key === "stream")
      ? [markdownTable(cpuTable), ""]
      : []),
    ...setupLines.flatMap((line) => [line, ""]),
    `Medians of ${REPS} interleaved repetitions, ${SECONDS} s per setup run, ${
      BYTES / 1048576
    } MiB per stream, on ${Deno.build.target}, ${navigator.hardwareConcurrency} cores; client, tool, squid, serve and target each a process on this machine (for the TLS floor, its out relay counts as tool and its in relay as serve).`,
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
          routes: MEASURED_ROUTES,
          rows: MEASURED_ROWS.map((row) => row.key),
          target: Deno.build.target,
          cores: navigator.hardwareConcurrency,
        },
        rows,
        cpuSecondsPerGB: cpu,
        setupMs: Object.fromEntries(
          MEASURED_ROUTES.map((route) => [route, setupMs(route)]),
        ),
        httptunnelingLog: logged.slice(0, 3),
      },
      null,
      2,
    ) + "\n",
  );
} finally {
  await Deno.remove(dir, { recursive: true });
}
