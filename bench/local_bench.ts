/**
 * The local proxy mode (`<port> proxy http://user:pass@squid`) against
 * cntlm, both in front of the same squid requiring NTLM, and against
 * clients speaking to that squid themselves (the ceiling), on loopback, in
 * the same run with interleaved repetitions. Prints medians and the ratios
 * httptunneling ÷ cntlm and httptunneling ÷ direct, and writes
 * bench/results/local.md and local.json.
 *
 *   deno task bench:local [--reps 3] [--seconds 5] [--rows http,ab,setups8,setups1,stream]
 *                         [--variants direct,cntlm,httptunneling]
 *
 * Rows:
 * - `http`: plain-HTTP requests per second, `GET http://127.0.0.1:ORIGIN/hello`
 *   (absolute form) over 8 kept-alive HTTP/1.1 connections, one request at
 *   a time each (bench/peer.ts `httpload`).
 * - `ab`: the same with `ab -k -c 8` (HTTP/1.0 keep-alive). ab cannot do
 *   NTLM: its direct figure is against a second squid requiring Basic
 *   (`ab -P`). A run with errors, non-2xx answers, or no result shows `fail`.
 * - `setups8`, `setups1`: CONNECT setups per second, 8 concurrent and one
 *   at a time: connect, `CONNECT 127.0.0.1:ECHO`, the 200, a 64-byte echo
 *   through the tunnel, close (peer.ts `connects`).
 * - `stream`: one stream through a CONNECT tunnel to a sink for the given
 *   seconds, Gbit/s (peer.ts `cstream`).
 *
 * Variants: `direct` (clients speak to squid), `floor` (the tool as
 * fixed forwards to squid: bytes copied through a Deno process, nothing
 * parsed, the clients doing NTLM themselves: what any proxy written on
 * Deno costs at least here), `cntlm` and `httptunneling`.
 *
 * Direct clients do NTLM themselves (peer.ts, NTLMv2 by
 * lib/proxy/auth/ntlm.ts): the handshake on each new connection, nothing on
 * a connection once authenticated, as browsers do.
 *
 * Needs squid, cntlm and apache2-utils (ab, htpasswd) from Debian. Stops
 * everything it started and removes its temporary directories.
 */

import { parseArgs } from "node:util";
import { freePort, pause, waitPort } from "../tests/_util/net.ts";
import {
  startCntlm,
  startSquid,
  startSquidWithBasic,
  type TestProcess,
} from "../tests/_util/proxies.ts";

const { values } = parseArgs({
  options: {
    reps: { type: "string", default: "3" },
    seconds: { type: "string", default: "5" },
    rows: { type: "string", default: "http,ab,setups8,setups1,stream" },
    variants: { type: "string", default: "direct,floor,cntlm,httptunneling" },
  },
});
const REPS = Number(values.reps);
const SECONDS = Number(values.seconds);
const ROOT = new URL("..", import.meta.url).pathname;
const PEER = `${ROOT}bench/peer.ts`;
const CONCURRENCY = 8;

// The account: squid's ntlm_fake_auth accepts any, but it is the same for all.
const DOMAIN = "CORP";
const USER = "jane";
const PASSWORD = "secret";
const DIRECT_NTLM = `ntlm:${DOMAIN}\\${USER}:${PASSWORD}`;

const DIR = await Deno.makeTempDir({ prefix: "httptunneling-local-bench-" });
// squid drops root and writes its per-port log here.
await Deno.chmod(DIR, 0o777);

// ---------------------------------------------------------------------------
// Processes: every one is kept here until it is stopped by its handle.

const children = new Set<Deno.ChildProcess>();
const services: AsyncDisposable[] = [];
const decoder = new TextDecoder();
let stopping = false;

function command(name: string, options: Deno.CommandOptions) {
  // Once interrupted, nothing new starts while the rest is being stopped.
  if (stopping) throw new Error("interrupted");
  return new Deno.Command(name, { cwd: DIR, ...options });
}

function spawn(
  name: string,
  args: string[],
  io: {
    stdin?: "null" | "piped";
    stdout?: "null" | "piped";
    env?: Record<string, string>;
  } = {},
): Deno.ChildProcess {
  const child = command(name, {
    args,
    env: io.env,
    stdin: io.stdin ?? "null",
    stdout: io.stdout ?? "null",
    stderr: "piped",
  }).spawn();
  children.add(child);
  return child;
}

/** Keeps the last few KB of a child's stderr, draining the pipe. */
function tailOf(stream: ReadableStream<Uint8Array>): () => string {
  let tail = "";
  (async () => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      tail = (tail + chunk).slice(-4096);
    }
  })().catch(() => {});
  return () => tail.trim();
}

/** Stops `child` by its handle: `signal`, then SIGKILL after 5 s. */
async function stop(child: Deno.ChildProcess, signal: Deno.Signal = "SIGTERM") {
  try {
    child.kill(signal);
  } catch { /* exited */ }
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
  }, 5000);
  await child.status;
  clearTimeout(timer);
  children.delete(child);
}

/** Runs a command to its end, killed after `limitMs`. */
async function run(name: string, args: string[], limitMs: number) {
  const child = command(name, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  children.add(child);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
  }, limitMs);
  const { code, stdout, stderr } = await child.output();
  clearTimeout(timer);
  children.delete(child);
  return {
    code,
    timedOut,
    stdout: decoder.decode(stdout),
    stderr: decoder.decode(stderr).trim(),
  };
}

/** A peer.ts client; its last line of output, parsed. */
async function peer(args: string[]): Promise<Record<string, unknown>> {
  const limit = (SECONDS + 20) * 1000;
  const result = await run(
    Deno.execPath(),
    ["run", "-A", PEER, ...args],
    limit,
  );
  const last = result.stdout.trim().split("\n").at(-1);
  if (result.code === 0 && last) return JSON.parse(last);
  throw new Error(
    result.timedOut
      ? `peer ${args[0]} gave no result within ${limit / 1000} s`
      : `peer ${args[0]} failed: ${
        result.stderr.split("\n").slice(-3).join(" ")
      }`,
  );
}

let cleaning: Promise<void> | undefined;
function cleanup(): Promise<void> {
  stopping = true;
  return cleaning ??= (async () => {
    for (const child of [...children]) await stop(child, "SIGKILL");
    for (const service of services.reverse()) {
      try {
        await service[Symbol.asyncDispose]();
      } catch { /* already gone */ }
    }
    await Deno.remove(DIR, { recursive: true }).catch(() => {});
  })();
}
const onInterrupt = () => {
  console.error("interrupted: stopping what the bench started");
  cleanup().finally(() => Deno.exit(130));
};
Deno.addSignalListener("SIGINT", onInterrupt);

/** `step` of the setup; if it fails, what was started is stopped first. */
async function guarded<T>(step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (error) {
    await cleanup();
    throw error;
  }
}

async function service<T extends AsyncDisposable>(started: Promise<T>) {
  const value = await started;
  services.push(value);
  return value;
}

// ---------------------------------------------------------------------------
// Variants and rows.

interface Running {
  /** Where clients send their requests. */
  readonly port: number;
  /** Where ab sends its Basic requests, when not to the direct Basic squid. */
  readonly basicPort?: number;
  stop(): PromiseLike<void>;
}

interface Variant {
  readonly name: string;
  /** The AUTH argument of peer.ts: what the client must do itself. */
  readonly auth: string;
  start(): Promise<Running>;
}

interface Sample {
  value: number;
  /** Something was wrong, though there is a figure (shown as †). */
  flag?: string;
  /** No figure. */
  failure?: string;
  detail?: Record<string, unknown>;
}

interface Row {
  readonly key: string;
  readonly label: string;
  measure(variant: Variant, running: Running): Promise<Sample>;
}

const variantNames = values.variants.split(",");
const rowKeys = values.rows.split(",");
const rowsWanted = (key: string) => rowKeys.includes(key);
const wanted = (name: string) => variantNames.includes(name);

// What httptunneling logged (warnings and errors), over all its runs.
const toolLog: string[] = [];
let toolLogLines = 0;

const versions = await debianVersions(["squid", "cntlm", "apache2-utils"]);

// Targets: the HTTP origin, an echo port per variant (every CONNECT setup
// leaves a socket in TIME_WAIT, and towards a shared port those one
// variant left would slow the next one's connects), and a sink.
const originPeer = spawn(Deno.execPath(), ["run", "-A", PEER, "origin"], {
  stdin: "piped",
  stdout: "piped",
});
tailOf(originPeer.stderr);
const originPort = await guarded(() =>
  firstJsonLine(originPeer.stdout).then((line) => Number(line.port))
);
const ORIGIN_URL = `http://127.0.0.1:${originPort}/hello`;
const ALL_VARIANTS = ["direct", "floor", "cntlm", "httptunneling"];
const echoPorts = new Map(ALL_VARIANTS.map((name) => [name, freePort()]));
const echo = spawn(Deno.execPath(), [
  "run",
  "-A",
  PEER,
  "echo",
  ...[...echoPorts.values()].map(String),
]);
tailOf(echo.stderr);
const sinkPort = freePort();
const sink = spawn(Deno.execPath(), [
  "run",
  "-A",
  PEER,
  "sink",
  String(sinkPort),
]);
tailOf(sink.stderr);
await guarded(() =>
  Promise.all(
    [...echoPorts.values(), sinkPort, originPort].map((port) => waitPort(port)),
  )
);

// One squid with ntlm_fake_auth (any credentials, the real three
// messages), with a port for each variant, for the same reason as the echo
// ports. Enough helpers that 8 handshakes at once do not wait for one
// (tests/_util's startSquidWithNtlm has 2). Its second log names the port
// of each request, to count the 407s each variant caused.
const squidPorts = new Map(
  ALL_VARIANTS.slice(1).map((name) => [
    name,
    freePort(),
  ]),
);
const squidLog = `${DIR}/squid-ports.log`;
const squid = await guarded(() =>
  service(startSquid(`
${
    [...squidPorts.values()].map((port) => `http_port 127.0.0.1:${port}`).join(
      "\n",
    )
  }
logformat bench %>lp %>Hs %rm
access_log stdio:${squidLog} bench
auth_param ntlm program /usr/lib/squid/ntlm_fake_auth
auth_param ntlm children 16
acl authed proxy_auth REQUIRED
http_access deny !authed
`))
);
squidPorts.set("direct", squid.port);
await guarded(() =>
  Promise.all([...squidPorts.values()].map((port) => waitPort(port)))
);
const basicSquid: TestProcess | undefined = rowsWanted("ab") &&
    (wanted("direct") || wanted("floor"))
  ? await guarded(() => service(startSquidWithBasic(USER, PASSWORD)))
  : undefined;

const VARIANTS: Variant[] = [
  {
    name: "direct",
    auth: DIRECT_NTLM,
    start: () =>
      Promise.resolve({
        port: squidPorts.get("direct")!,
        stop: () => Promise.resolve(),
      }),
  },
  {
    name: "cntlm",
    auth: "-",
    async start() {
      const cntlm = await startCntlm({
        upstreamPort: squidPorts.get("cntlm")!,
        username: USER,
        domain: DOMAIN,
        password: PASSWORD,
      });
      return { port: cntlm.port, stop: () => cntlm[Symbol.asyncDispose]() };
    },
  },
  {
    name: "floor",
    auth: DIRECT_NTLM,
    async start() {
      const listen = freePort();
      const basicListen = freePort();
      // Fixed forwards: the bytes copied, nothing parsed; the client
      // speaks to squid itself, NTLM included, as in "direct".
      return await startTool(
        listen,
        `${listen} 127.0.0.1 ${squidPorts.get("floor")}\n${
          basicSquid ? `${basicListen} 127.0.0.1 ${basicSquid.port}\n` : ""
        }`,
        basicSquid ? basicListen : undefined,
      );
    },
  },
  {
    name: "httptunneling",
    auth: "-",
    start() {
      const listen = freePort();
      return startTool(
        listen,
        `${listen} proxy http://${DOMAIN}%5C${USER}:${PASSWORD}@127.0.0.1:${
          squidPorts.get("httptunneling")
        }\n`,
      );
    },
  },
].filter((variant) => wanted(variant.name));

/** httptunneling with the config `text`, run as `deno task start` runs it. */
async function startTool(
  listen: number,
  text: string,
  basicPort?: number,
): Promise<Running> {
  const config = `${DIR}/local-${listen}.conf`;
  const log = `${config}.log`;
  await Deno.writeTextFile(config, text);
  // As `deno task start` runs it.
  const tool = spawn(Deno.execPath(), [
    "run",
    "--allow-net",
    "--allow-read",
    "--allow-write",
    "--allow-env",
    "--allow-ffi",
    `--config=${ROOT}deno.json`,
    `${ROOT}main.ts`,
    "run",
    config,
    "--log",
    log,
    "--log-level",
    "warning",
  ], { env: { MALLOC_MMAP_THRESHOLD_: "131072" } });
  const stderr = tailOf(tool.stderr);
  const exited = tool.status.then(({ code }) => {
    throw new Error(
      `httptunneling exited (${code}) before listening: ${stderr()}`,
    );
  });
  exited.catch(() => {});
  try {
    await Promise.race([waitPort(listen, 20_000, "httptunneling"), exited]);
  } catch (error) {
    await stop(tool);
    throw error;
  }
  return {
    port: listen,
    basicPort,
    async stop() {
      await stop(tool);
      const logged = (await Deno.readTextFile(log).catch(() => ""))
        .split("\n").filter(Boolean);
      if (logged.length) {
        toolLog.push(...logged.slice(0, 3));
        toolLogLines += logged.length;
      }
    },
  };
}

const num = (value: unknown) => Number(value);

/** A peer.ts result with `errors` becomes a flagged sample. */
function fromPeer(
  result: Record<string, unknown>,
  key: "perSecond" | "gbps",
): Sample {
  const errors = num(result.errors ?? 0);
  return {
    value: num(result[key]),
    flag: errors > 0 ? `${errors} errors, first: ${result.firstError}` : "",
    detail: result,
  };
}

const ROWS = ([
  {
    key: "http",
    label:
      `plain HTTP req/s, ${CONCURRENCY} kept-alive HTTP/1.1 connections (peer.ts)`,
    async measure(variant, running) {
      const result = await peer([
        "httpload",
        String(running.port),
        String(SECONDS),
        String(CONCURRENCY),
        ORIGIN_URL,
        variant.auth,
      ]);
      return fromPeer(result, "perSecond");
    },
  },
  {
    key: "ab",
    label: `plain HTTP req/s, ab -k -c ${CONCURRENCY} (direct: Basic squid)`,
    measure: (variant, running) =>
      ab(
        variant.name === "direct"
          ? basicSquid!.port
          : running.basicPort ?? running.port,
        { basic: variant.auth !== "-" },
      ),
  },
  ...[CONCURRENCY, 1].map((workers) => ({
    key: `setups${workers}`,
    label: `CONNECT setups/s, ${
      workers === 1 ? "sequential" : `${workers} concurrent`
    }`,
    async measure(variant: Variant, running: Running) {
      const result = await peer([
        "connects",
        String(running.port),
        String(SECONDS),
        String(workers),
        `127.0.0.1:${echoPorts.get(variant.name)}`,
        variant.auth,
      ]);
      return fromPeer(result, "perSecond");
    },
  })),
  {
    key: "stream",
    label: "CONNECT tunnel, 1 stream, Gbit/s",
    async measure(variant, running) {
      const result = await peer([
        "cstream",
        String(running.port),
        String(SECONDS),
        `127.0.0.1:${sinkPort}`,
        variant.auth,
      ]);
      return fromPeer(result, "gbps");
    },
  },
] satisfies Row[]).filter((row) => rowsWanted(row.key));

/** `ab -k` through the proxy on `port`; a figure only if every answer was a kept-alive 2xx. */
async function ab(
  port: number,
  { basic }: { basic: boolean },
): Promise<Sample> {
  const result = await run("ab", [
    "-k",
    "-c",
    String(CONCURRENCY),
    "-t",
    String(SECONDS),
    // After -t, which implies -n 50000: a fast proxy would end early.
    "-n",
    "100000000",
    // A response that never comes fails the run in 3 s, not ab's 30.
    "-s",
    "3",
    "-X",
    `127.0.0.1:${port}`,
    ...(basic ? ["-P", `${USER}:${PASSWORD}`] : []),
    ORIGIN_URL,
  ], (SECONDS + 20) * 1000);
  const field = (name: string) =>
    Number(new RegExp(`^${name}:\\s+([\\d.]+)`, "m").exec(result.stdout)?.[1]);
  const complete = field("Complete requests");
  const failed = field("Failed requests");
  const non2xx = field("Non-2xx responses") || 0;
  const keptAlive = field("Keep-Alive requests") || 0;
  const detail = { complete, failed, non2xx, keptAlive };
  const problems = [
    result.timedOut ? "no result in time" : "",
    result.code !== 0
      ? `exit ${result.code}: ${
        [result.stderr, /Total of \d+ requests completed/.exec(result.stdout)]
          .filter(Boolean).join("; ")
      }`
      : "",
    non2xx ? `${non2xx} of ${complete} answers not 2xx` : "",
    failed ? `${failed} failed requests` : "",
  ].filter(Boolean);
  if (problems.length) {
    return { value: NaN, failure: `ab: ${problems.join("; ")}`, detail };
  }
  return {
    value: field("Requests per second"),
    flag: keptAlive < complete
      ? `${complete - keptAlive} of ${complete} answers not kept alive`
      : "",
    detail,
  };
}

// ---------------------------------------------------------------------------
// The runs.

const samples = new Map<string, Sample[]>();
const cell = (row: string, variant: string) => `${row}/${variant}`;

try {
  for (let rep = 0; rep < REPS; rep++) {
    // Interleave: each repetition starts with a different variant.
    const order = VARIANTS.map((_, i) => VARIANTS[(i + rep) % VARIANTS.length]);
    for (const variant of order) {
      if (stopping) break;
      let running: Running;
      try {
        running = await variant.start();
      } catch (error) {
        const failure = `did not start: ${(error as Error).message}`;
        for (const row of ROWS) {
          const key = cell(row.key, variant.name);
          samples.set(key, [
            ...samples.get(key) ?? [],
            { value: NaN, failure },
          ]);
        }
        console.error(`rep ${rep + 1}/${REPS} ${variant.name}: ${failure}`);
        continue;
      }
      try {
        // Warm-up, not recorded: what is measured is a relay whose code
        // the JIT compiler has optimized, as after running for a while.
        const warm = (mode: string, target: string) =>
          peer([
            mode,
            String(running.port),
            "1",
            String(CONCURRENCY),
            target,
            variant.auth,
          ]).catch(() => {});
        await warm("httpload", ORIGIN_URL);
        await warm("connects", `127.0.0.1:${echoPorts.get(variant.name)}`);
        const line: Record<string, string> = {};
        for (const row of ROWS) {
          if (stopping) break;
          let sample: Sample;
          try {
            sample = await row.measure(variant, running);
          } catch (error) {
            sample = { value: NaN, failure: (error as Error).message };
          }
          const key = cell(row.key, variant.name);
          samples.set(key, [...samples.get(key) ?? [], sample]);
          line[row.key] = sample.failure
            ? "fail"
            : `${fmt(sample.value)}${sample.flag ? "†" : ""}`;
        }
        console.error(
          `rep ${rep + 1}/${REPS} ${variant.name}: ${JSON.stringify(line)}`,
        );
      } finally {
        await running.stop();
      }
    }
  }
  if (!stopping) await report();
} finally {
  await cleanup();
  Deno.removeSignalListener("SIGINT", onInterrupt);
}

// ---------------------------------------------------------------------------
// Results.

function fmt(value: number): string {
  return Number.isNaN(value)
    ? "–"
    : value >= 100
    ? value.toFixed(0)
    : value.toFixed(2);
}

function median(xs: number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted.length ? sorted[Math.floor(sorted.length / 2)] : NaN;
}

async function report() {
  const names = VARIANTS.map((variant) => variant.name);
  const headers: Record<string, string> = {
    direct: "direct to squid",
    floor: "Deno byte relay (floor)",
    cntlm: "cntlm",
    httptunneling: "httptunneling",
  };
  const ratioPeers = ["cntlm", "direct", "floor"].filter((name) =>
    wanted(name) && wanted("httptunneling")
  );
  const table: string[][] = [[
    "",
    ...names.map((name) => headers[name]),
    ...ratioPeers.map((name) => `ht ÷ ${name}`),
  ]];
  const notes: string[] = [];
  const json: Record<string, unknown>[] = [];
  for (const row of ROWS) {
    const medians: Record<string, number> = {};
    const cells = names.map((name) => {
      const all = samples.get(cell(row.key, name)) ?? [];
      const good = all.filter((sample) => !sample.failure);
      for (const sample of all) {
        const why = sample.failure ?? sample.flag;
        if (why) {
          const note = `${row.key}, ${name}: ${why}`;
          if (!notes.includes(note)) notes.push(note);
        }
      }
      medians[name] = median(good.map((sample) => sample.value));
      if (!good.length) return "fail";
      const marks = (good.length < all.length ? "*" : "") +
        (good.some((sample) => sample.flag) ? "†" : "");
      return `${fmt(medians[name])}${marks}`;
    });
    const ratios = Object.fromEntries(
      ratioPeers.map((name) => [
        name,
        medians.httptunneling / medians[name],
      ]),
    );
    table.push([
      row.label,
      ...cells,
      ...ratioPeers.map((name) => fmt(ratios[name])),
    ]);
    json.push({
      row: row.key,
      label: row.label,
      medians,
      ratios,
      samples: Object.fromEntries(
        names.map((name) => [name, samples.get(cell(row.key, name)) ?? []]),
      ),
    });
  }

  const keepAlive = names.map((name) => {
    const details = (samples.get(cell("http", name)) ?? []).flatMap((s) =>
      s.detail ? [s.detail] : []
    );
    const sum = (key: string) =>
      details.reduce((total, detail) => total + num(detail[key] ?? 0), 0);
    return details.length
      ? `${name} ${fmt(sum("requests") / Math.max(1, sum("connections")))}`
      : "";
  }).filter(Boolean);
  const squid407 = await count407s();
  const lines = [
    markdownTable(table),
    "",
    `Medians of ${REPS} interleaved repetitions, ${SECONDS} s per measurement, on ${Deno.build.target}, ${navigator.hardwareConcurrency} cores; ${versions}.`,
    "",
    "- direct to squid: the clients speak to squid themselves. peer.ts does NTLMv2 (lib/proxy/auth/ntlm.ts): the three messages on each new connection, nothing more on a connection once it is authenticated, as browsers do. ab cannot do NTLM: its direct figure is against a second squid, alike but requiring Basic (`ab -P`; squid caches the credentials).",
    "- squid: one process with ntlm_fake_auth (any credentials, the real three messages), 16 helpers, a port for each variant; cntlm with `Auth NTLM` (NTLMv1; its NTLMv2 gives up on ntlm_fake_auth's challenge); httptunneling NTLMv2, run as `deno task start` runs it, `--log-level warning`, one thread.",
    "- Deno byte relay: httptunneling as fixed forwards to squid (`PORT 127.0.0.1 SQUIDPORT`), the clients as in direct: the cost of a Deno process copying the bytes, with nothing parsed, which any proxy written on Deno pays at least; `ht ÷ Deno byte relay` is what the local proxy's own work leaves of it.",
    "- http: GET of a 22-byte /hello in absolute form, 8 connections with one request at a time each; a kept-alive connection the proxy closed is reopened and the request sent again (counted as a reconnect, not an error).",
    "- ab: `ab -k -c 8 -t S -s 3 -X proxy` (HTTP/1.0 with `Connection: Keep-Alive`); `fail` when ab exits with an error or any answer is not 2xx; its client is C, cheaper than peer.ts on shared cores.",
    "- CONNECT setups: connect, `CONNECT 127.0.0.1:ECHO HTTP/1.1`, the 200, 64 bytes echoed through the tunnel, close; each direct setup does the NTLM handshake (two CONNECTs).",
    "- stream: CONNECT to a sink, 256 KiB writes for S s, until the sink's close comes back through the tunnel.",
    `- Requests per client connection in the http row (keep-alive at work): ${
      keepAlive.join(", ")
    }.`,
    ...(squid407 ? [`- ${squid407}`] : []),
    ...(toolLogLines
      ? [
        `- httptunneling logged ${toolLogLines} warning or error lines; the first: ${
          toolLog.map((line) => `\`${line}\``).join(" ")
        }`,
      ]
      : []),
    ...(notes.length
      ? [
        "",
        "Failures (`fail`: no figure; `*`: some repetitions failed; `†`: a figure with errors):",
        "",
        ...notes.map((note) => `- ${note}`),
      ]
      : []),
  ];
  const markdown = lines.join("\n") + "\n";
  console.log(markdown);
  await Deno.mkdir(`${ROOT}bench/results`, { recursive: true });
  await Deno.writeTextFile(`${ROOT}bench/results/local.md`, markdown);
  await Deno.writeTextFile(
    `${ROOT}bench/results/local.json`,
    JSON.stringify(
      {
        settings: {
          reps: REPS,
          seconds: SECONDS,
          concurrency: CONCURRENCY,
          target: Deno.build.target,
          cores: navigator.hardwareConcurrency,
          versions,
        },
        rows: json,
        squid407,
        notes,
        httptunnelingLog: toolLog,
      },
      null,
      2,
    ) + "\n",
  );
}

/** 407s squid sent per request it let through, by variant and method. */
async function count407s(): Promise<string> {
  await pause(500);
  const text = await Deno.readTextFile(squidLog).catch(() => "");
  const byPort = new Map([...squidPorts].map(([name, port]) => [port, name]));
  const counts = new Map<string, { denied: number; passed: number }>();
  for (const line of text.split("\n")) {
    const [port, status, method] = line.split(" ");
    const name = byPort.get(Number(port));
    if (!name || !method) continue;
    const key = `${name} ${method === "CONNECT" ? "CONNECT" : "GET"}`;
    const count = counts.get(key) ?? { denied: 0, passed: 0 };
    if (status === "407") count.denied++;
    else count.passed++;
    counts.set(key, count);
  }
  if (!counts.size) return "";
  const ratio = (key: string) => {
    const count = counts.get(key);
    return count ? fmt(count.denied / Math.max(1, count.passed)) : "–";
  };
  return `squid's 407s per request it let through (warm-ups included), GET / CONNECT: ${
    VARIANTS.map(({ name }) =>
      `${name} ${ratio(`${name} GET`)} / ${ratio(`${name} CONNECT`)}`
    ).join(", ")
  }.`;
}

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

/** The first line of a child's stdout that is JSON. */
async function firstJsonLine(
  stream: ReadableStream<Uint8Array>,
): Promise<Record<string, unknown>> {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  try {
    while (!text.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`no output from the origin: ${text}`);
      text += value;
    }
    return JSON.parse(text.split("\n")[0]);
  } finally {
    await reader.cancel();
  }
}

/** The Debian versions of `packages`, for the notes. */
async function debianVersions(packages: string[]): Promise<string> {
  try {
    const { stdout } = await new Deno.Command("dpkg-query", {
      args: ["-W", "-f", "${Package} ${Version}\\n", ...packages],
      stdout: "piped",
      stderr: "null",
    }).output();
    return decoder.decode(stdout).trim().split("\n").join(", ");
  } catch {
    return "package versions unknown";
  }
}
