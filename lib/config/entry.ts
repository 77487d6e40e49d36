/**
 * A tunnel entry and its identity: the source address it listens on, how
 * that address is written, the key an entry is known by across reloads, and
 * which sources cannot be taken twice. Pure.
 *
 * @module
 */

import {
  formatHostPort,
  type HostPort,
  splitHostPort,
} from "../net/address.ts";
import type { Credentials } from "../proxy/auth/authenticator.ts";
import type { Route } from "../route/types.ts";
import {
  EntryError,
  parseHostField,
  parsePortField,
  type Token,
} from "./field.ts";
import type { TunnelOptions } from "./options.ts";

/** What every entry has: where it listens and how it reaches out. */
interface EntryFields {
  /** Address and port to listen on. */
  readonly source: HostPort;
  /** Direct, or through proxies. */
  readonly route: Route;
  /** Settings this entry overrides; the rest come from the command line. */
  readonly options: Partial<TunnelOptions>;
  /** 1-based line of the entry in its file; 0 for a command-line forward. */
  readonly line: number;
}

/** A fixed forward, the original format: every connection goes to one destination. */
export interface ForwardEntry extends EntryFields {
  /** Tells the kinds of entry apart. */
  readonly kind: "forward";
  /** Host and port to reach. */
  readonly destination: HostPort;
}

/**
 * A local proxy: an HTTP proxy (`proxy`) or a SOCKS server (`socks`) whose
 * clients name their destinations, each reached along the entry's route.
 */
export interface LocalProxyEntry extends EntryFields {
  /** Tells the kinds of entry apart. */
  readonly kind: "http-proxy" | "socks";
  /**
   * Destinations reached directly whatever the route: NO_PROXY-style
   * patterns (name suffixes, addresses, CIDR ranges, `host:port`).
   */
  readonly directFor: readonly string[];
  /**
   * Client addresses and CIDR ranges that may use the proxy; empty allows
   * loopback clients only.
   */
  readonly allow: readonly string[];
  /** Credentials clients must give (SOCKS5 user/password, HTTP Basic). */
  readonly clientCredentials?: Credentials;
}

/** One line of a config: a fixed forward or a local proxy. */
export type TunnelEntry = ForwardEntry | LocalProxyEntry;

/**
 * What an entry serves, for tables and logs.
 *
 * @param entry A config entry.
 * @returns The destination of a forward (`ssh.example.com:22`), or the
 *   kind of local proxy (`http proxy`, `socks`).
 */
export function describeService(entry: TunnelEntry): string {
  switch (entry.kind) {
    case "forward":
      return formatHostPort(entry.destination);
    case "http-proxy":
      return "http proxy";
    case "socks":
      return "socks";
  }
}

/** The address a bare source port binds: loopback only, never the network. */
const DEFAULT_BIND_HOST = "127.0.0.1";

/**
 * Reads a source field: `2222` (binds {@link DEFAULT_BIND_HOST}),
 * `host:port` or `[v6]:port`.
 *
 * @param token The field.
 * @returns The address to listen on.
 * @throws {EntryError} saying which of the three forms to write.
 */
export function parseSource(token: Token): HostPort {
  const { text, column } = token;
  if (!/[:.]/.test(text)) {
    return {
      host: DEFAULT_BIND_HOST,
      port: parsePortField(token, "source port"),
    };
  }
  const parts = splitHostPort(text);
  if (!parts) {
    throw new EntryError(
      column,
      `cannot parse source "${text}": write a port (2222), host:port (0.0.0.0:2222) or [v6]:port ([::1]:2222)`,
    );
  }
  return {
    host: parseHostField({ text: parts.host, column }, "source address"),
    port: parsePortField(
      { text: parts.port, column: column + parts.host.length + 1 },
      "source port",
    ),
  };
}

/**
 * The key an entry is known by across reloads: its source address.
 *
 * @param entry A config entry.
 * @returns e.g. `127.0.0.1:2222`.
 */
export function sourceKey(entry: TunnelEntry): string {
  return formatHostPort(entry.source);
}

const WILDCARDS = new Set(["0.0.0.0", "::"]);

/**
 * The sources taken so far, to tell which entry a new one clashes with:
 * the same port on the same address, or on either side the wildcard
 * address, which takes the port on every address. Each check takes the
 * same time however many entries there are.
 */
export class SourceIndex {
  // Per port: the entry on each address, and one on a wildcard address.
  #ports = new Map<
    number,
    { byHost: Map<string, TunnelEntry>; wildcard?: TunnelEntry }
  >();

  /**
   * The entry already taking `entry`'s source, if any.
   *
   * @param entry A new entry.
   * @returns The earlier entry it clashes with, or `undefined`.
   */
  clash(entry: TunnelEntry): TunnelEntry | undefined {
    const port = this.#ports.get(entry.source.port);
    if (port === undefined) return undefined;
    if (port.wildcard) return port.wildcard;
    if (WILDCARDS.has(entry.source.host)) {
      return port.byHost.values().next().value;
    }
    return port.byHost.get(entry.source.host);
  }

  /**
   * Takes `entry`'s source; check {@link clash} first.
   *
   * @param entry An entry that clashes with none taken.
   */
  add(entry: TunnelEntry): void {
    const { host, port } = entry.source;
    let taken = this.#ports.get(port);
    if (taken === undefined) {
      taken = { byHost: new Map() };
      this.#ports.set(port, taken);
    }
    if (WILDCARDS.has(host)) taken.wildcard = entry;
    taken.byHost.set(host, entry);
  }
}
