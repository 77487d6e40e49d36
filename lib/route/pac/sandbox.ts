/**
 * The PAC sandbox's lifecycle on the main side: a Worker with no
 * permissions per script (worker.ts), calls sent one at a time, each
 * bounded in time, and the Worker's name lookups answered through the
 * shared-memory bridge.
 *
 * It runs inside the sandbox process (process.ts, child.ts), which the
 * tool kills when a call overruns; in the tool itself only when the tool
 * may not start that process. A call that takes longer than the limit is
 * abandoned: the Worker is terminated and a new one loads the script for
 * the next call. Deno's `Worker.terminate()` does not stop a thread that
 * is running JavaScript (denoland/deno#35657), so in the tool a script
 * that loops for ever keeps its thread busy until the process ends; a
 * script that times out {@link MAX_TIMEOUTS} times is therefore not run
 * again, and every call fails at once until the script changes.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { errorMessage } from "../../errors.ts";
import { newBridgeBuffer, readQuestion, writeAnswer } from "./dns_bridge.ts";
import type { PacLookups } from "./lookups.ts";
import type { FromPacWorker, ToPacWorker } from "./worker.ts";

/** Default limit for one call (and for loading the script). */
export const DEFAULT_PAC_TIMEOUT_MS = 1_000;

/**
 * Limit for a Worker to load its own code, before the script's clock
 * starts: run from source, a Worker started from another Worker (`run
 * --workers`) compiles its modules first.
 */
export const SANDBOX_START_TIMEOUT_MS = 30_000;

/** Timeouts after which a script is not run again until it changes. */
export const MAX_TIMEOUTS = 3;

/** A PAC script's text and the name its errors are located by. */
export interface PacScript {
  /** The script. */
  readonly text: string;
  /** The file's path or the URL, as written in the config. */
  readonly name: string;
}

/** A script that does not compile, throws, or answers with garbage. */
export class PacScriptError extends Error {
  /**
   * @param script The script's name, e.g. `corp.pac`.
   * @param detail What went wrong, without the name and line.
   * @param line The script's line, when the engine told it.
   */
  constructor(
    readonly script: string,
    readonly detail: string,
    readonly line?: number,
  ) {
    super(
      `${script}${line === undefined ? "" : `:${line}`}: ${detail}`,
    );
    this.name = "PacScriptError";
  }
}

/** A call (or the script's loading) that took longer than the limit. */
export class PacTimeoutError extends Error {
  /**
   * @param script The script's name.
   * @param what What took too long, e.g. `FindProxyForURL(https://a:22/)`.
   * @param ms The limit.
   * @param stopped Whether the script is no longer run at all.
   */
  constructor(script: string, what: string, ms: number, stopped: boolean) {
    super(
      stopped
        ? `${script}: not run any more after ${MAX_TIMEOUTS} calls that took longer than ${ms} ms (fix the script; it runs again once it changes)`
        : `${script}: ${what} took longer than ${ms} ms and was abandoned (a loop in the script? raise pac-timeout= if its lookups are slow)`,
    );
    this.name = "PacTimeoutError";
  }
}

/** What evaluates one script: in a process (process.ts) or a Worker. */
export interface PacEvaluator {
  /** The script's name. */
  readonly name: string;
  /** Evaluates the script; throws what {@link PacSandbox.load} throws. */
  load(): Promise<void>;
  /** Asks the script; answers and throws as {@link PacSandbox.find}. */
  find(url: string, host: string): Promise<unknown>;
  /** Stops the evaluation for good. */
  close(): Promise<void>;
}

/** Options of {@link PacSandbox}. */
export interface PacSandboxOptions {
  /** Limit for one call. @default DEFAULT_PAC_TIMEOUT_MS */
  readonly timeoutMs?: number;
  /** Answers the script's name lookups. */
  readonly lookups: PacLookups;
  /** Told of abandoned Workers (`warn`) and of `alert()` text (`info`). */
  readonly log?: (level: "warn" | "info", message: string) => void;
}

const WORKER_URL = new URL("./worker.ts", import.meta.url);

/**
 * Run from source, Deno loads a Worker's code like a dynamic import, with
 * the parent's read permission; a compiled binary loads it from itself.
 * Without that permission the Worker would fail with Deno's own message.
 *
 * @throws {PacScriptError} naming the flag to add.
 */
function assertWorkerReadable(): void {
  if (Deno.build.standalone || WORKER_URL.protocol !== "file:") return;
  const path = fileURLToPath(WORKER_URL);
  if (Deno.permissions.querySync({ name: "read", path }).state !== "granted") {
    throw new PacScriptError(
      "pac",
      `PAC scripts run from source need read access to the tool's code: add --allow-read=${
        fileURLToPath(new URL("../../..", import.meta.url))
      } (deno task start and a compiled binary have it)`,
    );
  }
}

interface Running {
  readonly worker: Worker;
  readonly bridge: SharedArrayBuffer;
  /** Resolves once the Worker's code has loaded. */
  readonly ready: Promise<void>;
  /** The pending call's handler. */
  pending?: (message: FromPacWorker & { type: "answer" | "loaded" }) => void;
}

/** One PAC script, evaluated in a Worker without permissions. */
export class PacSandbox implements PacEvaluator {
  readonly #script: PacScript;
  readonly #timeoutMs: number;
  readonly #options: PacSandboxOptions;
  #running: Running | undefined;
  #loaded: Promise<void> | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  #timeouts = 0;
  #nextId = 1;
  #closed = false;

  /**
   * @param script The script.
   * @param options The limit, the lookups and the log.
   */
  constructor(script: PacScript, options: PacSandboxOptions) {
    this.#script = script;
    this.#options = options;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_PAC_TIMEOUT_MS;
  }

  /** The script's name. */
  get name(): string {
    return this.#script.name;
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
   * @returns What the function returned: a string, or another value.
   * @throws {PacScriptError} when the script throws.
   * @throws {PacTimeoutError} when the call takes too long.
   */
  find(url: string, host: string): Promise<unknown> {
    return this.#serial(async () => {
      await this.#ensureLoaded();
      const id = this.#nextId++;
      const answer = await this.#exchange(
        { type: "find", id, url, host },
        `FindProxyForURL("${url}", "${host}")`,
      );
      if (answer.type === "answer" && answer.error !== undefined) {
        throw new PacScriptError(
          this.#script.name,
          `FindProxyForURL("${url}", "${host}") threw ${answer.error}`,
          answer.line,
        );
      }
      return answer.type === "answer" ? answer.value : undefined;
    });
  }

  /** Terminates the Worker; later calls fail. */
  close(): Promise<void> {
    this.#closed = true;
    this.#stop();
    return Promise.resolve();
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
    if (this.#timeouts >= MAX_TIMEOUTS) {
      return Promise.reject(
        new PacTimeoutError(this.#script.name, "", this.#timeoutMs, true),
      );
    }
    if (this.#loaded === undefined) {
      this.#start();
      const loaded = this.#started().then(() =>
        this.#exchange(
          {
            type: "load",
            text: this.#script.text,
            name: this.#script.name,
            bridge: this.#running!.bridge,
            lookupTimeoutMs: Math.max(this.#timeoutMs - 50, 1),
          },
          "evaluating the script",
        )
      ).then((answer) => {
        if (answer.type === "answer" && answer.error !== undefined) {
          throw new PacScriptError(
            this.#script.name,
            answer.error,
            answer.line,
          );
        }
      });
      // A script that does not load fails every call the same way.
      this.#loaded = loaded;
    }
    return this.#loaded;
  }

  #start(): void {
    assertWorkerReadable();
    const worker = new Worker(WORKER_URL, {
      type: "module",
      name: `pac ${this.#script.name}`,
      deno: { permissions: "none" },
    });
    let started!: () => void;
    let failed!: (error: Error) => void;
    const running: Running = {
      worker,
      bridge: newBridgeBuffer(),
      ready: new Promise((resolve, reject) => {
        started = resolve;
        failed = reject;
      }),
    };
    // Only a Worker that never started rejects this; nobody may wait.
    running.ready.catch(() => {});
    worker.onmessage = ({ data }: MessageEvent<FromPacWorker>) => {
      if (data.type === "ready") started();
      else if (data.type === "lookup") this.#answerLookup(running.bridge);
      else if (data.type === "alert") {
        this.#options.log?.(
          "info",
          data.capped === undefined
            ? `${this.#script.name}: alert(): ${data.message.slice(0, 500)}`
            : `${this.#script.name}: more than ${data.capped} alert() calls in one call; the rest are not logged`,
        );
      } else running.pending?.(data);
    };
    worker.onerror = (event) => {
      event.preventDefault();
      failed(
        new PacScriptError(
          this.#script.name,
          `the sandbox failed: ${event.message}`,
        ),
      );
      running.pending?.({
        type: "answer",
        error: `the sandbox failed: ${event.message}`,
      });
    };
    this.#running = running;
  }

  // Waits for the Worker's code to load, which is not the script's time.
  #started(): Promise<void> {
    const running = this.#running!;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.#stop();
        reject(
          new PacScriptError(
            this.#script.name,
            `the PAC sandbox did not start within ${SANDBOX_START_TIMEOUT_MS} ms`,
          ),
        );
      }, SANDBOX_START_TIMEOUT_MS);
    });
    return Promise.race([running.ready, late]).finally(() =>
      clearTimeout(timer)
    );
  }

  async #answerLookup(bridge: SharedArrayBuffer): Promise<void> {
    const question = readQuestion(bridge);
    if (question === undefined) return;
    const { lookups } = this.#options;
    let addresses: string[];
    try {
      addresses = question.operation === "myAddresses"
        ? await lookups.myAddresses()
        : question.operation === "resolveIpv4"
        ? await lookups.resolveIpv4(question.host)
        : await lookups.resolveAll(question.host);
    } catch {
      addresses = [];
    }
    writeAnswer(bridge, question.sequence, addresses);
  }

  #exchange(
    message: ToPacWorker,
    what: string,
  ): Promise<FromPacWorker & { type: "answer" | "loaded" }> {
    const running = this.#running!;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        running.pending = undefined;
        this.#timeouts++;
        this.#stop();
        const error = new PacTimeoutError(
          this.#script.name,
          what,
          this.#timeoutMs,
          false,
        );
        this.#options.log?.(
          "warn",
          `${error.message}; its sandbox was terminated${
            this.#timeouts >= MAX_TIMEOUTS
              ? `, and the script is not run again until it changes`
              : " and is started afresh for the next call"
          }`,
        );
        reject(error);
      }, this.#timeoutMs);
      running.pending = (answer) => {
        clearTimeout(timer);
        running.pending = undefined;
        resolve(answer);
      };
      try {
        running.worker.postMessage(message);
      } catch (error) {
        clearTimeout(timer);
        reject(
          new PacScriptError(this.#script.name, errorMessage(error)),
        );
      }
    });
  }

  #stop(): void {
    this.#running?.worker.terminate();
    this.#running = undefined;
    this.#loaded = undefined;
  }
}
