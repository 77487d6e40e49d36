/**
 * Where a PAC script comes from and how it stays current: a file (read
 * now, read again when it changes, watched as the config is), an
 * `http(s)://` URL (fetched directly, never through a proxy, within a time
 * limit and a size cap, and fetched again every `pac-refresh=` and on
 * SIGHUP), or `auto` (the first URL discovery finds that answers). A read
 * or fetch that fails keeps the last good script, and says so in the log.
 *
 * @module
 */

import { errorMessage } from "../../errors.ts";
import type { HostPort } from "../../net/address.ts";
import { BufferedDuplex } from "../../net/buffered.ts";
import { closeQuietly, type Duplex, writeAll } from "../../net/duplex.ts";
import { dialTcp } from "../../net/tcp.ts";
import { tlsHandshake } from "../../net/tls.ts";
import { type ConfigWatch, watchConfig } from "../../config/watch.ts";
import { readBody } from "../../local/http1_body.ts";
import { responseFraming } from "../../local/http1.ts";
import { printable, readResponseHead } from "../../proxy/http_head.ts";
import { type DiscoveryInputs, pacCandidates } from "./discover.ts";
import { granted } from "./lookups.ts";
import type { PacScript } from "./sandbox.ts";

/** Where the DNS search domains are read, for WPAD. */
const RESOLV_CONF = "/etc/resolv.conf";

/** The largest PAC script read or fetched. */
export const MAX_PAC_BYTES = 1024 * 1024;

/** Default time between fetches of a PAC URL. */
export const DEFAULT_PAC_REFRESH_MS = 15 * 60_000;

/**
 * Time a PAC that never loaded is not tried again for: connections take
 * `pac-fallback=` at once meanwhile.
 */
export const PAC_RETRY_MS = 10_000;

/** Limit for fetching a PAC URL, connect to last byte. */
export const PAC_FETCH_TIMEOUT_MS = 10_000;

/** A PAC that cannot be read or fetched. */
export class PacSourceError extends Error {
  /**
   * @param source The file, URL or `auto`.
   * @param reason Why.
   * @param options The underlying cause.
   */
  constructor(source: string, reason: string, options?: ErrorOptions) {
    super(`cannot load PAC ${source}: ${reason}`, options);
    this.name = "PacSourceError";
  }
}

/** Options of {@link fetchPac}. */
export interface FetchPacOptions {
  /** Limit for the whole fetch. @default PAC_FETCH_TIMEOUT_MS */
  readonly timeoutMs?: number;
  /** Largest body. @default MAX_PAC_BYTES */
  readonly maxBytes?: number;
  /** PEM certificates trusted for an https:// URL, besides the system's. */
  readonly caCerts?: readonly string[];
}

/**
 * Fetches a PAC URL with a plain HTTP/1.1 GET, straight to its server:
 * never through a proxy, whatever HTTP_PROXY says, since the PAC is what
 * says which proxy to use.
 *
 * @param location An `http://` or `https://` URL.
 * @param options The limit, the size cap and trusted CAs.
 * @returns The script's text.
 * @throws {PacSourceError} saying what failed.
 */
export async function fetchPac(
  location: string,
  options: FetchPacOptions = {},
): Promise<string> {
  const { timeoutMs = PAC_FETCH_TIMEOUT_MS, maxBytes = MAX_PAC_BYTES } =
    options;
  let url: URL;
  try {
    url = new URL(location);
  } catch {
    throw new PacSourceError(location, "not a URL");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new PacSourceError(location, "only http:// and https:// URLs");
  }
  const target: HostPort = {
    host: url.hostname.replace(/^\[|\]$/g, ""),
    port: Number(url.port || (url.protocol === "https:" ? 443 : 80)),
  };
  const abort = new AbortController();
  let stream: Duplex | undefined;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    abort.abort();
    if (stream) closeQuietly(stream);
  }, timeoutMs);
  try {
    stream = await dialTcp(target, {
      connectTimeoutMs: timeoutMs,
      keepAlive: false,
    }, abort);
    if (url.protocol === "https:") {
      stream = await tlsHandshake(stream, target, options);
    }
    const host = url.port ? `${url.hostname}:${url.port}` : url.hostname;
    await writeAll(
      stream,
      new TextEncoder().encode(
        `GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${host}\r\n` +
          "Accept: application/x-ns-proxy-autoconfig, */*\r\n" +
          "Accept-Encoding: identity\r\nConnection: close\r\n" +
          "User-Agent: httptunneling\r\n\r\n",
      ),
    );
    const input = new BufferedDuplex(stream, {
      onEnd: () => new Error("the server closed in the middle of the answer"),
    });
    const head = await readResponseHead(
      input,
      () => new Error("the server closed without answering"),
    );
    if (head.status !== 200) {
      throw new Error(`the server answered ${printable(head.statusLine)}`);
    }
    const body = await readBody(
      input,
      responseFraming(head, "GET"),
      maxBytes,
      () =>
        new Error(`the script is larger than ${maxBytes} bytes, the most read`),
    );
    return new TextDecoder().decode(body);
  } catch (error) {
    throw new PacSourceError(
      location,
      timedOut
        ? `no complete answer within ${timeoutMs} ms`
        : errorMessage(error),
      { cause: error },
    );
  } finally {
    clearTimeout(timer);
    if (stream) closeQuietly(stream);
  }
}

/**
 * Reads a PAC file, refusing one larger than {@link MAX_PAC_BYTES}.
 *
 * @param path The file.
 * @returns Its text.
 * @throws {PacSourceError} saying why it cannot be read.
 */
export async function readPacFile(path: string): Promise<string> {
  try {
    const info = await Deno.stat(path);
    if (!info.isFile) throw new Error("not a regular file");
    if (info.size > MAX_PAC_BYTES) {
      throw new Error(`larger than ${MAX_PAC_BYTES} bytes, the most read`);
    }
    return await Deno.readTextFile(path);
  } catch (error) {
    throw new PacSourceError(path, errorMessage(error), { cause: error });
  }
}

/**
 * Tells whether a `pac=` value is a URL (or `auto`) rather than a file.
 *
 * @param location The value as written.
 * @returns `true` for `http://…`, `https://…` and `auto`.
 */
export function isPacUrl(location: string): boolean {
  return /^https?:\/\//i.test(location) || location === "auto";
}

/** Options of {@link PacSource}. */
export interface PacSourceOptions extends FetchPacOptions {
  /** Time between fetches of a URL. @default DEFAULT_PAC_REFRESH_MS */
  readonly refreshMs?: number;
  /**
   * Called with each changed script read or fetched after the first, to
   * take it into use; {@link PacSource.refresh} waits for it.
   */
  readonly onScript?: (script: PacScript) => void | Promise<void>;
  /** Told of fetches, discoveries and failures. */
  readonly log?: (level: "info" | "warn", message: string) => void;
  /** What `auto` reads; the machine's by default. */
  readonly discovery?: () => DiscoveryInputs;
}

/** A PAC script kept current. */
export class PacSource {
  readonly #location: string;
  readonly #options: PacSourceOptions;
  #script: PacScript | undefined;
  #first: Promise<PacScript> | undefined;
  #failed: { error: unknown; until: number } | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  #refreshing: Promise<void> | undefined;
  #queued: Promise<void> | undefined;
  #watch: ConfigWatch | undefined;
  #closed = false;

  /**
   * @param location A file path, an `http(s)://` URL, or `auto`.
   * @param options Limits, refresh time, and who hears of new scripts.
   */
  constructor(location: string, options: PacSourceOptions = {}) {
    this.#location = location;
    this.#options = options;
  }

  /** The location as written. */
  get location(): string {
    return this.#location;
  }

  /**
   * The script, loaded on first use; then the last good one. Until it has
   * loaded once, a failure is given again without a new attempt for
   * {@link PAC_RETRY_MS} (or until {@link PacSource.refresh}), so that
   * connections do not each wait for a server that is down.
   *
   * @returns The script.
   * @throws {PacSourceError} when it was never loaded.
   */
  script(): Promise<PacScript> {
    if (this.#script) return Promise.resolve(this.#script);
    if (this.#failed !== undefined && Date.now() < this.#failed.until) {
      return Promise.reject(this.#failed.error);
    }
    this.#first ??= this.#load().then((script) => {
      this.#failed = undefined;
      this.#script = script;
      this.#follow();
      return script;
    }, (error) => {
      this.#failed = { error, until: Date.now() + PAC_RETRY_MS };
      throw error;
    }).finally(() => {
      this.#first = undefined;
    });
    return this.#first;
  }

  /**
   * Reads or fetches the script again now (SIGHUP, a timer, the file
   * changed); a failure keeps the last good script and is logged. One
   * read or fetch runs at a time, so that a slow server and a short
   * `pac-refresh=` cannot pile fetches up; one asked for meanwhile runs
   * once after it.
   *
   * @returns When the script was read and, if it changed, handed on.
   */
  refresh(): Promise<void> {
    if (this.#refreshing === undefined) {
      this.#refreshing = this.#refreshNow().finally(() => {
        this.#refreshing = undefined;
      });
      return this.#refreshing;
    }
    this.#queued ??= this.#refreshing.then(() => {
      this.#queued = undefined;
      return this.refresh();
    });
    return this.#queued;
  }

  async #refreshNow(): Promise<void> {
    // Never loaded: the next connection tries at once.
    this.#failed = undefined;
    if (this.#closed || this.#script === undefined) return;
    try {
      const script = await this.#load();
      if (this.#closed) return;
      if (
        script.text !== this.#script.text || script.name !== this.#script.name
      ) {
        this.#script = script;
        await this.#options.onScript?.(script);
      }
    } catch (error) {
      this.#options.log?.(
        "warn",
        `${errorMessage(error)}; keeping the last good script`,
      );
    }
  }

  /** Stops refreshing and watching. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    await this.#watch?.close();
  }

  // After the first load: a timer for a URL, a watch for a file.
  #follow(): void {
    if (this.#closed) return;
    if (isPacUrl(this.#location)) {
      this.#timer = setInterval(
        () => this.refresh(),
        this.#options.refreshMs ?? DEFAULT_PAC_REFRESH_MS,
      );
    } else {
      try {
        this.#watch = watchConfig(this.#location, () => this.refresh());
      } catch (error) {
        this.#options.log?.(
          "warn",
          `cannot watch PAC ${this.#location} (${
            errorMessage(error)
          }); it is read again on SIGHUP only`,
        );
      }
    }
  }

  async #load(): Promise<PacScript> {
    if (this.#location !== "auto") {
      const text = isPacUrl(this.#location)
        ? await fetchPac(this.#location, this.#options)
        : await readPacFile(this.#location);
      return { text, name: this.#location };
    }
    const inputs = (this.#options.discovery ?? machineDiscovery)();
    for (const what of inputs.unread ?? []) {
      this.#options.log?.(
        "warn",
        `PAC discovery: the tool may not read ${what}; it is left out`,
      );
    }
    const candidates = pacCandidates(inputs);
    const failures: string[] = [];
    for (const url of candidates) {
      this.#options.log?.("info", `PAC discovery: trying ${url}`);
      try {
        const text = await fetchPac(url, this.#options);
        this.#options.log?.("info", `PAC discovery: using ${url}`);
        return { text, name: url };
      } catch (error) {
        failures.push(errorMessage(error));
        this.#options.log?.("info", `PAC discovery: ${errorMessage(error)}`);
      }
    }
    throw new PacSourceError(
      "auto",
      candidates.length === 0
        ? "no PAC_URL or AUTO_PROXY_URL is set and this host has no DNS domain for WPAD (DHCP WPAD is not tried); write pac=URL"
        : `none of ${candidates.length} candidates answered (${
          failures.join("; ")
        })`,
    );
  }
}

/**
 * What discovery reads on this machine: the environment, /etc/resolv.conf
 * and the host name, each only when the tool may read it (run from
 * source, Deno would otherwise stop the tool at a permission prompt).
 *
 * @returns The inputs of `pacCandidates`, with what could not be read.
 */
export function machineDiscovery(): DiscoveryInputs {
  const unread: string[] = [];
  const attempt = <T>(
    permission: Deno.PermissionDescriptor,
    what: string,
    read: () => T,
  ): T | undefined => {
    if (!granted(permission)) {
      unread.push(what);
      return undefined;
    }
    try {
      return read();
    } catch {
      return undefined;
    }
  };
  const variable = (name: string) =>
    attempt(
      { name: "env", variable: name },
      `${name} (needs --allow-env)`,
      () => Deno.env.get(name),
    );
  return {
    env: {
      PAC_URL: variable("PAC_URL"),
      AUTO_PROXY_URL: variable("AUTO_PROXY_URL"),
    },
    resolvConf: attempt(
      { name: "read", path: RESOLV_CONF },
      `${RESOLV_CONF} (needs --allow-read=${RESOLV_CONF})`,
      () => Deno.readTextFileSync(RESOLV_CONF),
    ),
    hostname: attempt(
      { name: "sys", kind: "hostname" },
      "the host name (needs --allow-sys=hostname)",
      () => Deno.hostname(),
    ),
    unread,
  };
}
