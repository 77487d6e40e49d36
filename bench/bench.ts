/**
 * Side-by-side benchmark on loopback: httptunneling (one thread, and
 * `--workers 2`) against direct connections, haproxy (tcp mode), socat
 * (default and -b 131072), rinetd, and the smallest Deno relays
 * (bench/floor.ts: plain read/write loops, and the tool's relay.ts alone),
 * all measured in the same run with interleaved repetitions.
 * Prints absolute figures and ratios to haproxy and to direct, and writes
 * bench/results/bench.json and bench.md.
 *
 *   deno task bench [--reps 3] [--seconds 2] [--idle 2000,8000] [--relays direct,haproxy,...]
 *
 * `--idle FROM,TO`: memory per idle tunnel is the slope of a fresh relay
 * process's RSS between FROM and TO open tunnels.
 *                   [--baseline DIR]
 *
 * `--baseline DIR` adds "ht baseline": the tool run from another checkout
 * (e.g. `git worktree add /tmp/base HEAD~3`), measured in the same
 * interleaved repetitions, so that a change's cost or gain is not lost in
 * the noise between runs.
 *
 * Needs haproxy, socat, rinetd, iperf3 and squid (apt-get install). Stops
 * everything it started.
 */

import { parseArgs } from "node:util";
import { freePort, pause, waitPort } from "../tests/_util/net.ts";
import { startSquid } from "../tests/_util/proxies.ts";
import { holdIdle, usage } from "./proc.ts";

const { values } = parseArgs({
  options: {
    reps: { type: "string", default: "3" },
    seconds: { type: "string", default: "2" },
    idle: { type: "string", default: "2000,8000" },
    relays: { type: "string" },
    baseline: { type: "string" },
  },
});
const REPS = Number(values.reps);
const SECONDS = Number(values.seconds);
const [IDLE_FROM, IDLE_TO] = values.idle.split(",").map(Number);
const ROOT = new URL("..", import.meta.url).pathname;
const DIR = await Deno.makeTempDir({ prefix: "httptunneling-bench-" });
await Deno.chmod(DIR, 0o777);

const children: Deno.ChildProcess[] = [];

function spawn(
  command: string,
  args: string[],
  stdin: "null" | "piped" = "null",
  stdout: "null" | "piped" = "null",
) {
  const child = new Deno.Command(command, {
    args,
    cwd: DIR,
    stdin,
    stdout,
    stderr: "null",
  }).spawn();
  children.push(child);
  return child;
}

const peer = (args: string[]) =>
  spawn(Deno.execPath(), ["run", "-A", `${ROOT}bench/peer.ts`, ...args]);

async function peerResult<T>(args: string[]): Promise<T> {
  // A run that loses its connection (it happens now and then right after a
  // relay starts) is tried again, at most twice more.
  for (let attempt = 1;; attempt++) {
    const { stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `${ROOT}bench/peer.ts`, ...args],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const last = new TextDecoder().decode(stdout).trim().split("\n").at(-1);
    if (last) return JSON.parse(last);
    if (attempt === 3) {
      throw new Error(
        `peer ${args.join(" ")}: ${new TextDecoder().decode(stderr)}`,
      );
    }
    console.error(`peer ${args.join(" ")} failed, trying again`);
    await pause(500);
  }
}

// Targets: an iperf3 server, a sink, and squid (the echo server follows).
const iperfPort = freePort();
spawn("iperf3", ["-s", "-p", String(iperfPort)]);
const sinkPort = freePort();
peer(["sink", String(sinkPort)]);
await using squid = await startSquid();
const squidPort = squid.port;
await Promise.all([iperfPort, sinkPort].map((port) => waitPort(port)));

/** httptunneling from `root` on a config file in DIR, logging warnings only. */
function spawnTool(root: string, config: string, extra: string[] = []) {
  return spawn(Deno.execPath(), [
    "run",
    "--allow-net",
    "--allow-read",
    "--allow-write",
    "--allow-env",
    `--config=${root}deno.json`,
    `${root}main.ts`,
    "run",
    config,
    "--log",
    `${config}.log`,
    "--log-level",
    "warning",
    ...extra,
  ]);
}

interface Relay {
  name: string;
  /** Listen port → port, or undefined for direct. */
  start?: (listen: number, target: number) => Deno.ChildProcess;
}

const HAPROXY: Relay = {
  name: "haproxy",
  start: (listen, target) => {
    const cfg = `${DIR}/haproxy-${listen}.cfg`;
    Deno.writeTextFileSync(
      cfg,
      `global\n  maxconn 9000\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 1h\n  timeout server 1h\nfrontend f\n  bind 127.0.0.1:${listen}\n  default_backend b\nbackend b\n  server s 127.0.0.1:${target}\n`,
    );
    return spawn("haproxy", ["-f", cfg, "-db"]);
  },
};

const RELAYS: Relay[] = [
  { name: "direct" },
  HAPROXY,
  {
    name: "socat",
    start: (listen, target) =>
      spawn("socat", [
        `TCP-LISTEN:${listen},bind=127.0.0.1,reuseaddr,fork`,
        `TCP:127.0.0.1:${target}`,
      ]),
  },
  {
    name: "socat -b 131072",
    start: (listen, target) =>
      spawn("socat", [
        "-b",
        "131072",
        `TCP-LISTEN:${listen},bind=127.0.0.1,reuseaddr,fork`,
        `TCP:127.0.0.1:${target}`,
      ]),
  },
  {
    name: "rinetd",
    start: (listen, target) => {
      const cfg = `${DIR}/rinetd-${listen}.conf`;
      Deno.writeTextFileSync(cfg, `127.0.0.1 ${listen} 127.0.0.1 ${target}\n`);
      return spawn("rinetd", ["-f", "-c", cfg]);
    },
  },
  ...(["loops", "relay"] as const).map((mode) => ({
    name: mode === "loops" ? "deno loops" : "relay.ts alone",
    start: (listen: number, target: number) =>
      spawn(Deno.execPath(), [
        "run",
        "--allow-net",
        `${ROOT}bench/floor.ts`,
        String(listen),
        String(target),
        mode,
      ]),
  })),
  ...[
    { name: "httptunneling", root: ROOT, extra: [] },
    { name: "ht --workers 2", root: ROOT, extra: ["--workers", "2"] },
    ...(values.baseline === undefined ? [] : [{
      name: "ht baseline",
      root: values.baseline.replace(/\/?$/, "/"),
      extra: [],
    }]),
  ]
    .map(({ name, root, extra }) => ({
      name,
      start: (listen: number, target: number) => {
        Deno.writeTextFileSync(
          `${DIR}/tunnels-${listen}.conf`,
          `${listen} 127.0.0.1 ${target}\n`,
        );
        return spawnTool(root, `tunnels-${listen}.conf`, [...extra]);
      },
    })),
];

const chosen = values.relays?.split(",");
if (chosen) {
  for (const relay of [...RELAYS]) {
    if (!chosen.includes(relay.name)) RELAYS.splice(RELAYS.indexOf(relay), 1);
  }
}

// An echo port per relay, all served by the one echo process. Every setup
// leaves a socket in TIME_WAIT for a minute; towards a shared port, those a
// fast relay left would make the next relay's connects search longer for a
// free local port.
const echoPorts = new Map(RELAYS.map((relay) => [relay.name, freePort()]));
peer(["echo", ...[...echoPorts.values()].map(String)]);
await Promise.all([...echoPorts.values()].map((port) => waitPort(port)));

/** Starts `relay` in front of `target`; returns the port to use and the process. */
async function front(relay: Relay, target: number) {
  if (!relay.start) {
    return { port: target, process: undefined, stop: async () => {} };
  }
  const listen = freePort();
  const process = relay.start(listen, target);
  await waitPort(listen);
  // Every worker of a multi-threaded relay has bound its socket by now.
  await pause(300);
  return {
    port: listen,
    process,
    stop: async () => {
      process.kill("SIGTERM");
      await process.output();
      children.splice(children.indexOf(process), 1);
    },
  };
}

async function iperf(port: number, extra: string[]) {
  // iperf3 serves one test at a time; a busy server answers with an error.
  for (let attempt = 1;; attempt++) {
    const { stdout } = await spawn(
      "iperf3",
      [
        "-c",
        "127.0.0.1",
        "-p",
        String(port),
        "-t",
        String(SECONDS),
        "-J",
        ...extra,
      ],
      "null",
      "piped",
    ).output();
    const report = JSON.parse(new TextDecoder().decode(stdout));
    if (report.end?.sum_received) {
      return {
        gbps: report.end.sum_received.bits_per_second / 1e9,
        bytes: report.end.sum_received.bytes,
      };
    }
    if (attempt === 3) {
      throw new Error(`iperf3 ${extra.join(" ")}: ${report.error}`);
    }
    await pause(1000);
  }
}

/**
 * Memory per idle tunnel, measured honestly: in a fresh relay process
 * (nothing before but 50 connections' warm-up), as the slope of its RSS
 * between IDLE_FROM and IDLE_TO open, echoed tunnels, each count read
 * after the process has settled. A heap that earlier load had grown would
 * hide the tunnels' cost in its slack.
 */
async function idleSlope(relay: Relay, target: number): Promise<number> {
  const fresh = await front(relay, target);
  const settled = async () => {
    await pause(1500);
    return usage(fresh.process!.pid).rssKiB;
  };
  try {
    await peerResult(["setups", String(fresh.port), "0.2", "1"]);
    await using _low = await holdIdle(fresh.port, IDLE_FROM);
    const low = await settled();
    await using _high = await holdIdle(fresh.port, IDLE_TO - IDLE_FROM);
    const high = await settled();
    return (high - low) / (IDLE_TO - IDLE_FROM);
  } finally {
    await fresh.stop();
  }
}

type Sample = Record<string, number>;
const samples = new Map<string, Sample[]>();
const record = (relay: string, sample: Sample) => {
  samples.set(relay, [...(samples.get(relay) ?? []), sample]);
};

for (let rep = 0; rep < REPS; rep++) {
  // Interleave: each repetition starts with a different relay.
  const order = RELAYS.map((_, i) => RELAYS[(i + rep) % RELAYS.length]);
  for (const relay of order) {
    const sample: Sample = {};
    const toIperf = await front(relay, iperfPort);
    const before = toIperf.process ? usage(toIperf.process.pid) : undefined;
    const up = await iperf(toIperf.port, []);
    if (before) {
      sample.cpuSecondsPerGB = (usage(toIperf.process!.pid).cpu - before.cpu) /
        (up.bytes / 1e9);
    }
    sample.upGbps = up.gbps;
    sample.downGbps = (await iperf(toIperf.port, ["-R"])).gbps;
    sample.streams8Gbps = (await iperf(toIperf.port, ["-P", "8"])).gbps;
    await toIperf.stop();
    const toEcho = await front(relay, echoPorts.get(relay.name)!);
    // Warm-up, not recorded: what is measured is a relay that has run for
    // a while, not one whose code the JIT compiler has not optimized yet.
    await peerResult(["setups", String(toEcho.port), "1", "50"]);
    const ping = await peerResult<{ meanUs: number; p99Us: number }>([
      "pingpong",
      String(toEcho.port),
      "3000",
    ]);
    sample.pingMeanUs = ping.meanUs;
    sample.pingP99Us = ping.p99Us;
    sample.setupsSequential = (await peerResult<{ perSecond: number }>([
      "setups",
      String(toEcho.port),
      String(SECONDS),
      "1",
    ])).perSecond;
    sample.setups50 = (await peerResult<{ perSecond: number }>([
      "setups",
      String(toEcho.port),
      String(SECONDS),
      "50",
    ])).perSecond;
    await toEcho.stop();
    // socat forks a process per connection: thousands of them are not an
    // idle-memory comparison worth making.
    if (relay.start && !relay.name.startsWith("socat")) {
      sample.kbPerIdleTunnel = await idleSlope(
        relay,
        echoPorts.get(relay.name)!,
      );
    }
    record(relay.name, sample);
    console.error(
      `rep ${rep + 1}/${REPS} ${relay.name}: ${JSON.stringify(sample)}`,
    );
  }
}

// The CONNECT path: a client speaking CONNECT to squid itself, against the
// client going through httptunneling with squid as its proxy. haproxy in
// front of squid, the client speaking CONNECT through it, shows what a
// native relay in the same place costs on the same cores.
const BYTES = 2 * 1024 ** 3;
const squidPath: Sample[] = [];
for (let rep = 0; rep < REPS; rep++) {
  const own = await peerResult<{ gbps: number }>([
    "stream",
    String(squidPort),
    String(BYTES),
    `127.0.0.1:${sinkPort}`,
  ]);
  const haproxyFront = await front(HAPROXY, squidPort);
  const viaHaproxy = await peerResult<{ gbps: number }>([
    "stream",
    String(haproxyFront.port),
    String(BYTES),
    `127.0.0.1:${sinkPort}`,
  ]);
  await haproxyFront.stop();
  const listen = freePort();
  await Deno.writeTextFile(
    `${DIR}/tunnels-squid.conf`,
    `${listen} 127.0.0.1 ${sinkPort} 127.0.0.1 ${squidPort}\n`,
  );
  const tool = spawnTool(ROOT, "tunnels-squid.conf");
  await waitPort(listen);
  const via = await peerResult<{ gbps: number }>([
    "stream",
    String(listen),
    String(BYTES),
  ]);
  tool.kill("SIGTERM");
  await tool.output();
  children.splice(children.indexOf(tool), 1);
  squidPath.push({
    ownConnectGbps: own.gbps,
    viaHaproxyGbps: viaHaproxy.gbps,
    viaToolGbps: via.gbps,
  });
  console.error(
    `squid path rep ${rep + 1}: ${JSON.stringify(squidPath.at(-1))}`,
  );
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : NaN;
};
const metric = (relay: string, key: string) =>
  median(
    (samples.get(relay) ?? []).map((s) => s[key]).filter((v) =>
      v !== undefined
    ),
  );

const ROWS: [string, string, "higher" | "lower"][] = [
  ["upGbps", "1 stream, client→server, Gbit/s", "higher"],
  ["downGbps", "1 stream, server→client, Gbit/s", "higher"],
  ["streams8Gbps", "8 streams, Gbit/s", "higher"],
  ["cpuSecondsPerGB", "relay CPU s per GB", "lower"],
  ["pingMeanUs", "64-byte round trip, mean µs", "lower"],
  ["pingP99Us", "64-byte round trip, p99 µs", "lower"],
  ["setupsSequential", "setups/s, sequential", "higher"],
  ["setups50", "setups/s, 50 concurrent", "higher"],
  [
    "kbPerIdleTunnel",
    `KiB per idle tunnel (fresh process, slope ${IDLE_FROM} → ${IDLE_TO})`,
    "lower",
  ],
];
const names = RELAYS.map((r) => r.name);
const fmt = (v: number) =>
  Number.isNaN(v) ? "–" : v >= 100 ? v.toFixed(0) : v.toFixed(2);
// Ratios of each httptunneling variant in the run to haproxy and direct.
const variants = names.filter((name) => /^(httptunneling|ht )/.test(name));
const ratios = variants.flatMap((name) =>
  ["haproxy", "direct"].filter((peer) => names.includes(peer)).map((peer) => ({
    label: `${name === "httptunneling" ? "ht" : name} ÷ ${peer}`,
    name,
    peer,
  }))
);
const lines = [
  `| | ${names.join(" | ")} | ${ratios.map((r) => r.label).join(" | ")} |`,
  `|---|${names.map(() => "---").join("|")}|${
    ratios.map(() => "---").join("|")
  }|`,
];
const results: Record<string, Record<string, number>> = {};
for (const [key, label] of ROWS) {
  const row = names.map((name) => metric(name, key));
  names.forEach((name, i) => (results[name] ??= {})[key] = row[i]);
  lines.push(
    `| ${label} | ${row.map(fmt).join(" | ")} | ${
      ratios.map((r) => fmt(metric(r.name, key) / metric(r.peer, key))).join(
        " | ",
      )
    } |`,
  );
}
const own = median(squidPath.map((s) => s.ownConnectGbps));
const viaHaproxy = median(squidPath.map((s) => s.viaHaproxyGbps));
const via = median(squidPath.map((s) => s.viaToolGbps));
const markdown =
  `${
    lines.join("\n")
  }\n\nCONNECT through squid: client speaking CONNECT itself ${
    fmt(own)
  } Gbit/s; ` +
  `through haproxy (tcp mode) in front of squid ${
    fmt(viaHaproxy)
  } Gbit/s (ratio ${fmt(viaHaproxy / own)}); ` +
  `through httptunneling ${fmt(via)} Gbit/s (ratio ${fmt(via / own)}).\n\n` +
  `Medians of ${REPS} interleaved repetitions, ${SECONDS} s per throughput run, on ${Deno.build.target}, ${navigator.hardwareConcurrency} cores.\n`;
console.log(markdown);
await Deno.mkdir(`${ROOT}bench/results`, { recursive: true });
await Deno.writeTextFile(`${ROOT}bench/results/bench.md`, markdown);
await Deno.writeTextFile(
  `${ROOT}bench/results/bench.json`,
  JSON.stringify(
    {
      results,
      squid: {
        ownConnectGbps: own,
        viaHaproxyGbps: viaHaproxy,
        viaToolGbps: via,
      },
      samples: Object.fromEntries(samples),
    },
    null,
    2,
  ),
);

for (const child of children) {
  try {
    child.kill("SIGKILL");
  } catch { /* exited */ }
  await child.status;
}
await Deno.remove(DIR, { recursive: true });
