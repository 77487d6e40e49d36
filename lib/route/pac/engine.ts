/**
 * A `pac=` route's engine: the script kept current (source.ts), evaluated
 * in its sandbox (sandbox.ts), its answers parsed (result.ts) and cached
 * per scheme, host and port for `pac-cache=`, and the fallback applied
 * when the script cannot answer. A new script replaces the running one
 * only once it loads; until then the last good one keeps answering.
 * {@link PacEngines} holds one engine per PAC source for all entries.
 *
 * @module
 */

import { errorMessage } from "../../errors.ts";
import type { PacRoute, Route } from "../types.ts";
import { type PacLookups, systemLookups } from "./lookups.ts";
import {
  type PacAlternative,
  PacResultError,
  parsePacResult,
} from "./result.ts";
import { PacProcess, pacSpawn } from "./process.ts";
import { type PacEvaluator, PacSandbox, type PacScript } from "./sandbox.ts";
import { PacSource } from "./source.ts";
import type { PacQuery } from "./url.ts";

/** Default time a PAC answer is reused. */
export const DEFAULT_PAC_CACHE_MS = 60_000;

const MAX_CACHED_ANSWERS = 10_000;

/** What a PAC route decided for one query. */
export interface PacDecision {
  /** The alternatives, in the order to try them. */
  readonly alternatives: readonly PacAlternative[];
  /** The script the answer came from (a URL for `auto`). */
  readonly scriptName: string;
  /** Set when the script could not answer and `pac-fallback=direct` applied. */
  readonly fallback?: string;
}

/**
 * How a connection's log line names the PAC that routed it.
 *
 * @param decision What the PAC decided.
 * @param route The PAC route.
 * @returns e.g. `(pac corp.pac)`, or `(pac corp.pac failed; pac-fallback=direct)`.
 */
export function pacLabel(decision: PacDecision, route: PacRoute): string {
  return decision.fallback === undefined
    ? `(pac ${decision.scriptName})`
    : `(pac ${route.source} failed; pac-fallback=direct)`;
}

/** The script could not answer and `pac-fallback=error` is in force. */
export class PacUnavailableError extends Error {
  /**
   * @param source The PAC source.
   * @param cause Why it could not answer.
   */
  constructor(source: string, cause: unknown) {
    super(
      `${
        errorMessage(cause)
      } (pac ${source}: no connection is made while the PAC cannot answer; pac-fallback=direct connects directly instead)`,
      { cause },
    );
    this.name = "PacUnavailableError";
  }
}

/** Options of {@link PacEngine} and {@link PacEngines}. */
export interface PacEngineOptions {
  /** Where lookups go. @default the system resolver */
  readonly lookups?: PacLookups;
  /** PEM certificates trusted for an https:// PAC URL. */
  readonly caCerts?: readonly string[];
  /** The log. */
  readonly log?: (level: "info" | "warn", message: string) => void;
  /**
   * A signal that makes {@link PacEngines} read or fetch every script
   * again (SIGHUP), listened for while any engine exists. @default none
   */
  readonly refreshSignal?: Deno.Signal;
}

/** One PAC source's script, sandbox and answer cache. */
export class PacEngine {
  readonly #route: PacRoute;
  readonly #options: PacEngineOptions;
  readonly #source: PacSource;
  readonly #lookups: PacLookups;
  #sandbox: PacEvaluator | undefined;
  #warned = false;
  #cache = new Map<
    string,
    { until: number; decision: Promise<PacAlternative[]> }
  >();

  /**
   * @param route The route; its source, limits and refresh time apply.
   * @param options Lookups, trusted CAs and the log.
   */
  constructor(route: PacRoute, options: PacEngineOptions = {}) {
    this.#route = route;
    this.#options = options;
    this.#lookups = options.lookups ?? systemLookups({ log: options.log });
    this.#source = new PacSource(route.source, {
      refreshMs: route.refreshMs,
      caCerts: options.caCerts,
      log: options.log,
      onScript: (script) => this.#replace(script),
    });
  }

  /**
   * Reads or fetches the script and checks that it compiles.
   *
   * @returns The script's name (the URL discovery found, for `auto`).
   * @throws {PacSourceError}, {PacScriptError} or {PacTimeoutError}.
   */
  async compile(): Promise<string> {
    const sandbox = await this.#current();
    await sandbox.load();
    return sandbox.name;
  }

  /**
   * Asks the script for a destination, without the cache or the fallback.
   *
   * @param query What the script is shown.
   * @returns The raw returned value and the parsed alternatives.
   * @throws what the script's source, sandbox or answer parsing throw.
   */
  async askRaw(
    query: PacQuery,
  ): Promise<
    { value: unknown; alternatives: PacAlternative[]; scriptName: string }
  > {
    const sandbox = await this.#current();
    const value = await sandbox.find(query.url, query.host);
    let alternatives: PacAlternative[];
    try {
      alternatives = parsePacResult(value);
    } catch (error) {
      if (!(error instanceof PacResultError)) throw error;
      throw new PacResultError(
        `${sandbox.name}: FindProxyForURL("${query.url}", "${query.host}") returned an answer that is not a PAC result: ${error.message}`,
        error.item,
      );
    }
    return { value, alternatives, scriptName: sandbox.name };
  }

  /**
   * What to try for a destination: the script's answer (cached), or the
   * fallback when it cannot answer.
   *
   * @param query What the script is shown.
   * @returns The alternatives in order.
   * @throws {PacUnavailableError} when the script cannot answer and the
   *   fallback is `error`.
   */
  async decide(query: PacQuery): Promise<PacDecision> {
    const now = Date.now();
    const hit = this.#cache.get(query.cacheKey);
    let pending = hit && hit.until > now ? hit.decision : undefined;
    if (pending === undefined) {
      if (this.#cache.size >= MAX_CACHED_ANSWERS) this.#cache.clear();
      pending = this.askRaw(query).then(({ alternatives }) => alternatives);
      const entry = {
        until: now + (this.#route.cacheMs ?? DEFAULT_PAC_CACHE_MS),
        decision: pending,
      };
      this.#cache.set(query.cacheKey, entry);
      // Failures are not cached: the next connection asks again.
      pending.catch(() => {
        if (this.#cache.get(query.cacheKey) === entry) {
          this.#cache.delete(query.cacheKey);
        }
      });
    }
    try {
      const alternatives = await pending;
      return {
        alternatives,
        scriptName: this.#sandbox?.name ?? this.#route.source,
      };
    } catch (error) {
      if (this.#route.fallback !== "direct") {
        throw new PacUnavailableError(this.#route.source, error);
      }
      const reason = errorMessage(error);
      this.#options.log?.(
        "warn",
        `${reason}; connecting directly (pac-fallback=direct)`,
      );
      return {
        alternatives: [{ kind: "direct" }],
        scriptName: this.#route.source,
        fallback: reason,
      };
    }
  }

  /** Reads or fetches the script again now (SIGHUP). */
  refresh(): Promise<void> {
    return this.#source.refresh();
  }

  /** Stops the sandbox, the refresh timer and the watch. */
  async close(): Promise<void> {
    const sandbox = this.#sandbox;
    this.#sandbox = undefined;
    await Promise.all([sandbox?.close(), this.#source.close()]);
  }

  async #current(): Promise<PacEvaluator> {
    const script = await this.#source.script();
    this.#sandbox ??= this.#newSandbox(script);
    return this.#sandbox;
  }

  // A process the tool can kill when it may start one; otherwise a
  // Worker in this process, which a script that loops cannot be taken out
  // of.
  #newSandbox(script: PacScript): PacEvaluator {
    const options = {
      timeoutMs: this.#route.timeoutMs,
      lookups: this.#lookups,
      log: this.#options.log,
    };
    const spawn = pacSpawn();
    if (spawn !== undefined) {
      return new PacProcess(script, { ...options, spawn });
    }
    if (!this.#warned) {
      this.#warned = true;
      this.#options.log?.(
        "warn",
        `${script.name}: without --allow-run the PAC runs inside the tool, where a script that loops or allocates without end cannot be stopped (give the tool --allow-run=deno, or --allow-run=httptunneling for the binary)`,
      );
    }
    return new PacSandbox(script, options);
  }

  // A changed script takes over once it loads; a broken one is reported
  // and the last good one stays.
  async #replace(script: PacScript): Promise<void> {
    const next = this.#newSandbox(script);
    try {
      await next.load();
    } catch (error) {
      await next.close();
      this.#options.log?.(
        "warn",
        `PAC ${script.name} changed, and the new script does not load (${
          errorMessage(error)
        }); keeping the last good script`,
      );
      return;
    }
    const previous = this.#sandbox;
    this.#sandbox = next;
    await previous?.close();
    this.#cache.clear();
    this.#options.log?.("info", `PAC ${script.name} changed; reloaded`);
  }
}

/** The engines of all PAC routes, one per source and settings. */
export class PacEngines {
  readonly #options: PacEngineOptions;
  #engines = new Map<string, PacEngine>();
  #onSignal = () => {
    this.#options.log?.("info", "SIGHUP: reading the PAC scripts again");
    this.refresh();
  };

  /** @param options Lookups, trusted CAs and the log, for every engine. */
  constructor(options: PacEngineOptions = {}) {
    this.#options = options;
  }

  /**
   * The engine for a route, made on first use.
   *
   * @param route The PAC route.
   * @param caCerts The entry's `ca-file=` certificates, for an https:// PAC URL.
   * @returns Its engine.
   */
  engineFor(route: PacRoute, caCerts?: readonly string[]): PacEngine {
    const { refreshSignal } = this.#options;
    if (this.#engines.size === 0 && refreshSignal !== undefined) {
      Deno.addSignalListener(refreshSignal, this.#onSignal);
    }
    const key = engineKey(route);
    let engine = this.#engines.get(key);
    if (engine === undefined) {
      engine = new PacEngine(route, {
        ...this.#options,
        caCerts: caCerts ?? this.#options.caCerts,
      });
      this.#engines.set(key, engine);
    }
    return engine;
  }

  /**
   * Closes the engines no route of the running config uses any more, so
   * that a removed PAC is no longer fetched or watched.
   *
   * @param routes The routes of the config just applied.
   */
  async retain(routes: readonly Route[]): Promise<void> {
    const kept = new Set(
      routes.flatMap((route) => route.kind === "pac" ? [engineKey(route)] : []),
    );
    const dropped = [...this.#engines].filter(([key]) => !kept.has(key));
    for (const [key] of dropped) this.#engines.delete(key);
    const { refreshSignal } = this.#options;
    if (
      dropped.length > 0 && this.#engines.size === 0 &&
      refreshSignal !== undefined
    ) {
      Deno.removeSignalListener(refreshSignal, this.#onSignal);
    }
    await Promise.all(dropped.map(([, engine]) => engine.close()));
  }

  /** Reads or fetches every script again (SIGHUP). */
  async refresh(): Promise<void> {
    await Promise.all([...this.#engines.values()].map((e) => e.refresh()));
  }

  /** Closes every engine. */
  async close(): Promise<void> {
    const { refreshSignal } = this.#options;
    if (this.#engines.size > 0 && refreshSignal !== undefined) {
      Deno.removeSignalListener(refreshSignal, this.#onSignal);
    }
    const engines = [...this.#engines.values()];
    this.#engines.clear();
    await Promise.all(engines.map((engine) => engine.close()));
  }
}

// Routes that share this share an engine: same script, same limits.
function engineKey(route: PacRoute): string {
  return JSON.stringify([
    route.source,
    route.timeoutMs,
    route.cacheMs,
    route.refreshMs,
    route.fallback,
  ]);
}
