/**
 * Running httptunneling itself in a test: in this process (its supervisor
 * on a config text, with its log records captured in memory), or as the
 * command line does, as a child `deno run` of main.ts with the permissions
 * that the compile task bakes in, its config in a temporary directory and
 * its log file read back.
 *
 * @module
 */

import assert from "node:assert/strict";
import { configure, type LogRecord, reset } from "@logtape/logtape";
import manifest from "../../deno.json" with { type: "json" };
import {
  DEFAULT_TUNNEL_OPTIONS,
  type TunnelOptions,
} from "../../lib/config/options.ts";
import type { TunnelEntry } from "../../lib/config/entry.ts";
import { type ConfigContext, parseConfig } from "../../lib/config/grammar.ts";
import { Supervisor, type SupervisorOptions } from "../../lib/supervisor.ts";
import { bytes, pause, readExactly, text, within, writeAll } from "./net.ts";

/** Tunnel settings for tests: time limits short enough to fail fast. */
export const TEST_OPTIONS: TunnelOptions = {
  ...DEFAULT_TUNNEL_OPTIONS,
  connectTimeoutMs: 2_000,
  handshakeTimeoutMs: 2_000,
};

/** Parses a config text, failing the test on any error. */
export function entriesOf(
  config: string,
  context?: ConfigContext,
): TunnelEntry[] {
  const { entries, errors } = parseConfig(config, "test.conf", context);
  if (errors.length > 0) {
    throw new Error(errors.map((e) => e.message).join("\n"));
  }
  return entries;
}

/** The tool's supervisor serving a config text; disposing shuts it down. */
export interface RunningTool extends AsyncDisposable {
  /** The supervisor, for applying changed configs and looking inside. */
  readonly supervisor: Supervisor;
}

/**
 * Runs the tool's supervisor, in this process, on a config text.
 *
 * @param config Config file text.
 * @param options Supervisor settings; short test time limits by default.
 * @param context Where the parser reads variables and files from.
 */
export async function startTool(
  config: string,
  options: SupervisorOptions = { defaults: TEST_OPTIONS },
  context?: ConfigContext,
): Promise<RunningTool> {
  const supervisor = new Supervisor(options);
  await supervisor.apply(entriesOf(config, context));
  return { supervisor, [Symbol.asyncDispose]: () => supervisor.shutdown() };
}

/** Log lines captured from the tool's loggers while a test runs. */
export interface CapturedLogs extends AsyncDisposable {
  /** Each record's rendered message, in order. */
  readonly lines: string[];
  /** Resolves once a line matching `pattern` was logged. */
  waitFor(pattern: RegExp, ms?: number): Promise<string>;
}

/** Routes the tool's log records into memory until disposed. */
export async function captureLogs(): Promise<CapturedLogs> {
  const lines: string[] = [];
  await configure({
    reset: true,
    sinks: {
      memory: (record: LogRecord) => {
        lines.push(record.message.map(String).join(""));
      },
    },
    loggers: [
      { category: ["httptunneling"], lowestLevel: "debug", sinks: ["memory"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: [] },
    ],
  });
  return {
    lines,
    async waitFor(pattern, ms = 5_000) {
      const deadline = Date.now() + ms;
      while (true) {
        const line = lines.find((each) => pattern.test(each));
        if (line !== undefined) return line;
        if (Date.now() > deadline) {
          throw new Error(
            `no log line matched ${pattern} within ${ms} ms:\n${
              lines.join("\n")
            }`,
          );
        }
        await pause(20);
      }
    },
    [Symbol.asyncDispose]: reset,
  };
}

/** The repository's root directory, with a trailing slash. */
export const ROOT = new URL("../..", import.meta.url).pathname;
const MAIN = `${ROOT}main.ts`;

/** The permission and unstable flags the compile task bakes into the binary. */
export const COMPILE_FLAGS = manifest.tasks.compile.split(/\s+/).filter((
  word,
) =>
  word.startsWith("--allow-") || word.startsWith("--deny-") ||
  word.startsWith("--unstable-")
);

/** Deno's arguments to run the tool with `args` (and `denoFlags` added). */
export function runArgs(args: string[], denoFlags: string[] = []): string[] {
  return [
    "run",
    "--quiet",
    `--config=${ROOT}deno.json`,
    ...COMPILE_FLAGS,
    ...denoFlags,
    MAIN,
    ...args,
  ];
}

/**
 * The command that runs the tool from source with `args`, in `cwd`, with
 * stdout and stderr piped.
 */
export function tool(
  args: string[],
  cwd = ROOT,
  env: Record<string, string> = {},
  denoFlags: string[] = [],
): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: runArgs(args, denoFlags),
    cwd,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
}

/** Runs the tool with `args` in `cwd` to its end; its exit code and output. */
export async function runTool(
  args: string[],
  cwd = ROOT,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const { code, stdout, stderr } = await tool(args, cwd).output();
  return { code, stdout: text(stdout), stderr: text(stderr) };
}

/**
 * A new temporary directory holding `tunnels.conf` with `content`, and
 * `files` by name (the tool reads only below its directory).
 */
export async function tempConfig(
  content: string,
  files: Record<string, string> = {},
): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "httptunneling-cli-" });
  await Deno.writeTextFile(`${dir}/tunnels.conf`, content);
  for (const [name, contents] of Object.entries(files)) {
    await Deno.writeTextFile(`${dir}/${name}`, contents);
  }
  return dir;
}

/** Waits until `path` contains a line matching `pattern`. */
export async function waitForLog(
  path: string,
  pattern: RegExp,
): Promise<string> {
  const deadline = Date.now() + 10_000;
  while (true) {
    const log = await Deno.readTextFile(path).catch(() => "");
    if (pattern.test(log)) return log;
    if (Date.now() > deadline) {
      throw new Error(`${path} has no line matching ${pattern}:\n${log}`);
    }
    await pause(50);
  }
}

/** `run` started by startRun; disposing it stops it and removes its directory. */
export interface StartedRun extends AsyncDisposable {
  /** Its log file. */
  readonly log: string;
  /** The `deno run` process's id. */
  readonly pid: number;
}

/**
 * Starts `run` in `dir` with its log in `dir/HTTPTunneling.log`. Disposing
 * it sends SIGTERM, asserts exit code 0 and removes `dir`.
 */
export function startRun(
  dir: string,
  options: string[] = [],
  denoFlags: string[] = [],
): StartedRun {
  const child = tool(["run", ...options], dir, {}, denoFlags).spawn();
  return {
    log: `${dir}/HTTPTunneling.log`,
    pid: child.pid,
    async [Symbol.asyncDispose]() {
      child.kill("SIGTERM");
      const { code } = await within(child.output(), 10_000, "exit");
      assert.equal(code, 0);
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/**
 * The CPU time (user and system, all threads) process `pid` has used so
 * far, from /proc (Linux). Deno refuses /proc/self without --allow-all,
 * so `cat` reads it.
 */
export async function cpuSeconds(pid: number): Promise<number> {
  const { stdout } = await new Deno.Command("cat", {
    args: [`/proc/${pid}/stat`],
  }).output();
  const stat = text(stdout);
  // utime and stime, fields 14 and 15 of proc(5), counted after the name.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticksPerSecond = 100;
  return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond;
}

/** The ids of the processes whose parent is `pid`. */
export async function childPids(pid: number): Promise<number[]> {
  const { stdout } = await new Deno.Command("pgrep", {
    args: ["-P", String(pid)],
  }).output();
  return text(stdout).split("\n").filter((line) => line !== "").map(Number);
}

/** `run` started by spawnRun; disposing it kills it and removes its directory. */
export interface SpawnedRun extends AsyncDisposable {
  /** The `deno run` process. */
  readonly child: Deno.ChildProcess;
  /** Its log file. */
  readonly log: string;
}

/**
 * Starts `run` on `config` in a new directory and waits until the config
 * is applied; `child` and `log` for the test.
 *
 * @param wrap A shell command run first in the same process (`ulimit …`).
 * @param files Files to put beside the config, by name.
 */
export async function spawnRun(
  config: string,
  options: string[] = [],
  wrap?: string,
  files?: Record<string, string>,
): Promise<SpawnedRun> {
  const dir = await tempConfig(config, files);
  const command = tool(["run", ...options], dir);
  const child = wrap
    ? new Deno.Command("sh", {
      args: [
        "-c",
        `${wrap}; exec "$0" "$@"`,
        Deno.execPath(),
        ...runArgs(["run", ...options]),
      ],
      cwd: dir,
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn()
    : command.spawn();
  const log = `${dir}/HTTPTunneling.log`;
  await waitForLog(log, /config applied/);
  return {
    child,
    log,
    async [Symbol.asyncDispose]() {
      try {
        child.kill("SIGKILL");
      } catch { /* exited */ }
      await child.output().catch(() => child.status);
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/**
 * Opens a tunnel to an echo server through 127.0.0.1:`port` and checks that
 * "ping" comes back; the connection stays open for the test.
 */
export async function liveTunnel(port: number): Promise<Deno.TcpConn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await writeAll(conn, bytes("ping"));
  assert.equal(text(await within(readExactly(conn, 4), 5_000, "echo")), "ping");
  return conn;
}
