/**
 * The PAC sandbox run in a process of its own (child.ts) that the tool can
 * kill: Deno's `Worker.terminate()` does not stop a Worker that is running
 * JavaScript (denoland/deno#35657), and Workers share the process's heap,
 * so a script that loops or allocates without end would take a core or
 * the whole tool with it. The process holds the same permissionless
 * Worker as an in-process sandbox; the tool answers its name lookups,
 * bounds every call in time, and kills the process (SIGKILL) when a call
 * overruns or the process stops answering. A process that dies (killed,
 * or out of memory under its heap cap) is replaced by a fresh one for the
 * next call; one that keeps dying is started again only after a backoff.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { basename } from "node:path";
import { BufferedDuplex } from "../../net/buffered.ts";
import { PAC_SANDBOX_COMMAND } from "./child.ts";
import type { PacLookups } from "./lookups.ts";
import {
  DEFAULT_PAC_TIMEOUT_MS,
  type PacEvaluator,
  type PacScript,
  PacScriptError,
  PacTimeoutError,
  SANDBOX_START_TIMEOUT_MS,
} from "./sandbox.ts";
import {
  encodeLine,
  type FromPacChild,
  MAX_FROM_CHILD_BYTES,
  parseFromChild,
  readerDuplex,
  type ToPacChild,
} from "./wire.ts";

/** The sandbox process's V8 heap limit, in MiB. */
export const PAC_HEAP_MB = 128;

/**
 * Time the process is given past the limit to report a timeout itself
 * (its Worker's clock runs inside it) before it is taken for hung.
 */
const GRACE_MS = 1_000;

/** Deaths in a row after which a new process waits for a backoff. */
const DEATHS_BEFORE_BACKOFF = 3;
const MAX_BACKOFF_MS = 60_000;

const STDERR_TAIL_BYTES = 2048;

/** How the tool starts its sandbox process. */
export interface PacSpawn {
  /** The executable: Deno, or the compiled tool. */
  readonly command: string;
  readonly args: readonly string[];
  readonly env: Record<string, string>;
}

const CHILD_URL = new URL("./child.ts", import.meta.url);
const HEAP_FLAG = `--max-old-space-size=${PAC_HEAP_MB}`;

function runGranted(command: string): boolean {
  return Deno.permissions.querySync({ name: "run", command }).state ===
    "granted";
}

/**
 * How to start a sandbox process, when the tool may: a compiled binary
 * runs itself with the hidden subcommand, with the heap cap in
 * `DENO_V8_FLAGS`; run from source, Deno runs child.ts with read access
 * to the tool's code only. The executable is run by its path when
 * `--allow-run` covers that, else by its name (`--allow-run=deno` names
 * the `deno` on PATH, which is not the path Deno reports for itself when
 * PATH holds a symlink).
 *
 * @returns The command, or `undefined` without the run permission.
 */
export function pacSpawn(): PacSpawn | undefined {
  const path = Deno.execPath();
  const name = Deno.build.standalone ? basename(path) : "deno";
  const command = [path, name].find(runGranted);
  if (command === undefined) return undefined;
  if (Deno.build.standalone) {
    return {
      command,
      args: [PAC_SANDBOX_COMMAND],
      env: { DENO_V8_FLAGS: HEAP_FLAG },
    };
  }
  if (CHILD_URL.protocol !== "file:") return undefined;
  return {
    command,
    args: [
      "run",
      "--quiet",
      "--no-prompt",
      "--unstable-worker-options",
      `--v8-flags=${HEAP_FLAG}`,
      `--allow-read=${fileURLToPath(new URL("../../..", import.meta.url))}`,
      fileURLToPath(CHILD_URL),
    ],
    env: {},
  };
}

/** Options of {@link PacProcess}. */
export interface PacProcessOptions {
  /** Limit for one call. @default DEFAULT_PAC_TIMEOUT_MS */
  readonly timeoutMs?: number;
  /** Answers the script's name lookups. */
  readonly lookups: PacLookups;
  /** Told of killed and dead processes (`warn`) and of `alert()` text (`info`). */
  readonly log?: (level: "warn" | "info", message: string) => void;
  /** How to start the process. @default {@link pacSpawn}'s answer */
  readonly spawn?: PacSpawn;
}

interface Running {
  readonly process: Deno.ChildProcess;
  readonly writer: WritableStreamDefaultWriter<Uint8Array>;
  /** Resolves when the process said it is ready. */
  readonly ready: Promise<void>;
  /** Resolves when the process and its pipes are done. */
  done: Promise<void>;
  /** The pending call's handler: its answer, or why there is none. */
  pending?: (answer: FromPacChild & { type: "result" } | Error) => void;
  killed: boolean;
}

/** One PAC script, evaluated in a sandbox process the tool can kill. */
export class PacProcess implements PacEvaluator {
  readonly #script: PacScript;
  readonly #timeoutMs: number;
  readonly #options: PacProcessOptions;
  readonly #spawn: PacSpawn;
  #running: Running | undefined;
  #loaded: Promise<void> | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  #ended = new Set<Promise<void>>();
  #deaths = 0;
  #retryAt = 0;
  #closed = false;

  /**
   * @param script The script.
   * @param options The limit, the lookups, the log and the command.
   * @throws {Error} when no spawn is given and the tool may not run one.
   */
  constructor(script: PacScript, options: PacProcessOptions) {
    const spawn = options.spawn ?? pacSpawn();
    if (spawn === undefined) {
      throw new Error("the PAC sandbox process needs --allow-run");
    }
    this.#script = script;
    this.#options = options;
    this.#spawn = spawn;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_PAC_TIMEOUT_MS;
  }

  /** The script's name. */
  get name(): string {
    return this.#script.name;
  }

  /** The running process's id, while there is one. */
  get pid(): number | undefined {
    return this.#running?.process.pid;
  }

  /**
   * Evaluates the script, checking that it compiles and defines
   * `FindProxyForURL`.
   *
   * @throws {PacScriptError} located at the script's line when known.
   * @throws {PacTimeoutError} when evaluating takes too long.
   */
  load(): Promise<void> {
    return this.#serial(() => this.#ensureLoaded());
  }

  /**
   * Calls `FindProxyForURLEx(url, host)` when the script defines it,
   * otherwise `FindProxyForURL(url, host)`.
   *
   * @param url The URL argument.
   * @param host The host argument.
   * @returns What the function returned: a string, or a described value.
   * @throws {PacScriptError} when the script throws or its process dies.
   * @throws {PacTimeoutError} when the call takes too long.
   */
  find(url: string, host: string): Promise<unknown> {
    return this.#serial(async () => {
      await this.#ensureLoaded();
      const what = `FindProxyForURL("${url}", "${host}")`;
      const answer = await this.#exchange(
        { type: "find", url, host },
        what,
        this.#timeoutMs + GRACE_MS,
      );
      this.#deaths = 0;
      return answer;
    });
  }

  /** Kills the process and waits for it; later calls fail. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#kill();
    await Promise.all(this.#ended);
  }

  #serial<T>(run: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(run, run);
    this.#queue = next.catch(() => {});
    return next;
  }

  #ensureLoaded(): Promise<void> {
    if (this.#closed) {
      return Promise.reject(
        new PacScriptError(this.#script.name, "the PAC engine was closed"),
      );
    }
    const wait = this.#retryAt - Date.now();
    if (this.#loaded === undefined && wait > 0) {
      return Promise.reject(
        new PacScriptError(
          this.#script.name,
          `its sandbox process ended ${this.#deaths} times in a row; it is started again in ${
            Math.ceil(wait / 1000)
          } s`,
        ),
      );
    }
    if (this.#loaded === undefined) {
      const running = this.#start();
      const loaded = this.#started(running).then(() =>
        this.#exchange(
          {
            type: "load",
            name: this.#script.name,
            text: this.#script.text,
            timeoutMs: this.#timeoutMs,
          },
          "evaluating the script",
          SANDBOX_START_TIMEOUT_MS + this.#timeoutMs,
        )
      ).then(() => {});
      // A script that does not load fails every call the same way.
      this.#loaded = loaded;
    }
    return this.#loaded;
  }

  #start(): Running {
    const process = new Deno.Command(this.#spawn.command, {
      args: [...this.#spawn.args],
      env: this.#spawn.env,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let ready!: () => void;
    const running: Running = {
      process,
      writer: process.stdin.getWriter(),
      ready: new Promise((resolve) => ready = resolve),
      done: Promise.resolve(),
      killed: false,
    };
    const stderr = this.#tail(process.stderr);
    const reading = this.#read(running, ready);
    const done = Promise.all([process.status, stderr, reading]).then(
      ([status, tail]) => this.#onEnd(running, status, tail),
    );
    running.done = done;
    this.#ended.add(done);
    done.finally(() => this.#ended.delete(done));
    this.#running = running;
    return running;
  }

  // Reads the process's messages until its stdout ends.
  async #read(running: Running, ready: () => void): Promise<void> {
    const end = new Error("end");
    const input = new BufferedDuplex(readerDuplex(running.process.stdout), {
      onEnd: () => end,
    });
    try {
      for (;;) {
        const message = parseFromChild(
          await input.line(
            MAX_FROM_CHILD_BYTES,
            () => new Error("a message longer than the limit"),
          ),
        );
        if (message.type === "ready") ready();
        else if (message.type === "result") running.pending?.(message);
        else if (message.type === "log") {
          // The process's own timeout warnings are the tool's to give.
          if (message.level === "info") {
            this.#options.log?.("info", String(message.message));
          }
        } else this.#answerLookup(running, message);
      }
    } catch (error) {
      // A broken message ends a process that may still run; at the end of
      // stdout its status tells why it ended.
      if (error !== end) this.#killRunning(running);
    } finally {
      input.close();
    }
  }

  async #answerLookup(
    running: Running,
    question: FromPacChild & { type: "lookup" },
  ): Promise<void> {
    const { lookups } = this.#options;
    const host = String(question.host).slice(0, 255);
    let addresses: string[];
    try {
      addresses = question.operation === "myAddresses"
        ? await lookups.myAddresses()
        : question.operation === "resolveIpv4"
        ? await lookups.resolveIpv4(host)
        : await lookups.resolveAll(host);
    } catch {
      addresses = [];
    }
    this.#send(running, {
      type: "addresses",
      sequence: question.sequence,
      addresses,
    });
  }

  // What the process wrote to stderr, its end kept for the log.
  async #tail(stderr: ReadableStream<Uint8Array>): Promise<string> {
    let tail = "";
    const decoder = new TextDecoder();
    for await (const chunk of stderr) {
      tail = (tail + decoder.decode(chunk, { stream: true })).slice(
        -STDERR_TAIL_BYTES,
      );
    }
    return tail.trim();
  }

  #onEnd(running: Running, status: Deno.CommandStatus, tail: string): void {
    const how = status.signal === null
      ? `exit status ${status.code}`
      : `signal ${status.signal}`;
    const error = new PacScriptError(
      this.#script.name,
      running.killed
        ? "its sandbox process was killed"
        : `its sandbox process ended (${how}; out of memory? its heap is capped at ${PAC_HEAP_MB} MiB)${
          tail === "" ? "" : `: ${reasonLine(tail)}`
        }`,
    );
    if (!running.killed && !this.#closed) {
      this.#options.log?.("warn", error.message);
      this.#died();
    }
    running.pending?.(error);
    if (this.#running === running) {
      this.#running = undefined;
      this.#loaded = undefined;
    }
  }

  #started(running: Running): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.#killRunning(running);
        reject(
          new PacScriptError(
            this.#script.name,
            `the PAC sandbox process did not start within ${SANDBOX_START_TIMEOUT_MS} ms`,
          ),
        );
      }, SANDBOX_START_TIMEOUT_MS);
    });
    const ended = running.done.then(() => {
      throw new PacScriptError(
        this.#script.name,
        "its sandbox process ended before it started",
      );
    });
    return Promise.race([running.ready, late, ended]).finally(() =>
      clearTimeout(timer)
    );
  }

  #exchange(
    message: ToPacChild,
    what: string,
    deadlineMs: number,
  ): Promise<unknown> {
    const running = this.#running;
    if (running === undefined) {
      return Promise.reject(
        new PacScriptError(this.#script.name, "its sandbox process ended"),
      );
    }
    return new Promise((resolve, reject) => {
      const timedOut = () => {
        this.#killRunning(running);
        this.#died();
        const error = new PacTimeoutError(
          this.#script.name,
          what,
          this.#timeoutMs,
          false,
        );
        this.#options.log?.(
          "warn",
          `${error.message}; its sandbox process was killed, and a new one is started for the next call`,
        );
        reject(error);
      };
      const timer = setTimeout(timedOut, deadlineMs);
      running.pending = (answer) => {
        clearTimeout(timer);
        running.pending = undefined;
        if (answer instanceof Error) reject(answer);
        else if (answer.failure?.kind === "timeout") timedOut();
        else if (answer.failure !== undefined) {
          reject(
            new PacScriptError(
              this.#script.name,
              String(answer.failure.detail),
              typeof answer.failure.line === "number"
                ? answer.failure.line
                : undefined,
            ),
          );
        } else resolve(answer.value);
      };
      this.#send(running, message);
    });
  }

  #send(running: Running, message: ToPacChild): void {
    running.writer.write(encodeLine(message)).catch(() => {});
  }

  #died(): void {
    this.#deaths++;
    if (this.#deaths >= DEATHS_BEFORE_BACKOFF) {
      this.#retryAt = Date.now() + Math.min(
        1000 * 2 ** (this.#deaths - DEATHS_BEFORE_BACKOFF),
        MAX_BACKOFF_MS,
      );
    }
  }

  #kill(): void {
    if (this.#running !== undefined) this.#killRunning(this.#running);
  }

  #killRunning(running: Running): void {
    if (this.#running === running) {
      this.#running = undefined;
      this.#loaded = undefined;
    }
    if (running.killed) return;
    running.killed = true;
    running.writer.close().catch(() => {});
    try {
      running.process.kill("SIGKILL");
    } catch {
      // It has already ended.
    }
  }
}

// The line that says why, out of a crash's backtrace.
function reasonLine(tail: string): string {
  const lines = tail.split("\n").map((line) => line.replace(/^[#\s]+/, ""));
  const said = lines.find((line) => /out of memory|fatal|error/i.test(line));
  return (said ?? lines.at(-1) ?? "").slice(0, 300);
}
