/**
 * The server side of the SOCKS handshake, for the local SOCKS listener:
 * SOCKS5 (RFC 1928) with no authentication or username/password
 * (RFC 1929), and SOCKS4 and SOCKS4a; CONNECT only. Domain names are passed
 * on unresolved, so that the upstream proxy resolves them.
 *
 * ```
 * acceptSocks ─┬─ 5: methods → [username/password] → request ─┬→ SocksRequest
 *              └─ 4: request → user id → [4a: host name] ─────┘
 * caller dials request.target, then writes socksSuccess, socksFailure
 * or socksRefusal, and relays
 * ```
 *
 * Reading is bounded: a time limit for the whole handshake, lengths of at
 * most 255 from the protocol, and SOCKS4 strings refused past 255 bytes. The
 * answers are built by pure functions, in the client's version.
 *
 * @module
 */

import { DEFAULT_TUNNEL_OPTIONS } from "../config/options.ts";
import { errorMessage, routeFailure, TimeoutError } from "../errors.ts";
import {
  type HostPort,
  ipBytes,
  ipText,
  isHostName,
  isIPv4,
  isIPv6,
} from "../net/address.ts";
import type { BufferedDuplex } from "../net/buffered.ts";
import { concat, sameBytes } from "../net/bytes.ts";
import { writeAll } from "../net/duplex.ts";
import type { Credentials } from "../proxy/auth/authenticator.ts";
import { withDeadline } from "../proxy/deadline.ts";
import {
  SOCKS5_VERSION,
  SOCKS_ADDRESS_TYPE,
  SOCKS_COMMAND,
  SOCKS_METHOD,
  SOCKS_REPLIES,
  SOCKS_REPLY,
  socksAddressBytes,
  socksAddressOf,
  USER_PASS_VERSION,
} from "../proxy/socks_wire.ts";
import { formatDuration } from "../time/duration.ts";

const SOCKS4_VERSION = 4;
// SOCKS4 replies start with 0, and have one code for every failure.
const SOCKS4_REPLY_VERSION = 0;
const SOCKS4_GRANTED = 0x5a;
const SOCKS4_REJECTED = 0x5b;
// The longest SOCKS4 user id or SOCKS4a host name accepted, NUL excluded.
const SOCKS4_MAX_STRING = 255;
// The bound address of a reply when the caller does not name one.
const ANY: HostPort = { host: "0.0.0.0", port: 0 };

/** What a client asked for. */
export interface SocksRequest {
  /** The SOCKS version the client speaks; answers must use it. */
  readonly version: 4 | 5;
  /** Where to connect; a domain name is as the client sent it, not resolved. */
  readonly target: HostPort;
  /** The user name the client proved with its password (SOCKS5 only). */
  readonly user?: string;
}

/** Options for {@link acceptSocks}. */
export interface SocksServerOptions {
  /** The client's `host:port`, for messages. */
  readonly clientLabel: string;
  /**
   * Requires username/password authentication (RFC 1929) with these; no
   * authentication and SOCKS4, which has no password, are then refused.
   * @default none: no authentication
   */
  readonly credentials?: Credentials;
  /**
   * Limit for the whole handshake.
   * @default DEFAULT_TUNNEL_OPTIONS.handshakeTimeoutMs (10 s)
   */
  readonly timeoutMs?: number;
  /** Gives up, closing the client, when aborted. @default none */
  readonly signal?: AbortSignal;
}

/**
 * What a client did wrong, for choosing a log level: `protocol` (not SOCKS,
 * or a malformed message), `unsupported` (BIND, UDP ASSOCIATE, an unknown
 * address type or method), `auth` (a wrong or missing password), `closed`
 * (it went away mid-handshake), `timeout` (it did not finish in time).
 */
export type SocksClientProblem =
  | "protocol"
  | "unsupported"
  | "auth"
  | "closed"
  | "timeout";

/** A SOCKS client's handshake failed. The message never holds a password. */
export class SocksClientError extends Error {
  /** The client's `host:port`, as given in the options. */
  readonly client: string;
  /** What went wrong. */
  readonly problem: SocksClientProblem;

  /**
   * @param client The client's `host:port`.
   * @param problem What went wrong.
   * @param message What the client did, after "SOCKS client HOST:PORT ".
   * @param options The underlying cause.
   */
  constructor(
    client: string,
    problem: SocksClientProblem,
    message: string,
    options?: ErrorOptions,
  ) {
    super(`SOCKS client ${client} ${message}`, options);
    this.name = "SocksClientError";
    this.client = client;
    this.problem = problem;
  }
}

/**
 * Reads a SOCKS client's handshake up to its CONNECT request, answering
 * the method selection and authentication on the way; the caller then
 * dials the target and answers with {@link socksSuccess},
 * {@link socksFailure} or {@link socksRefusal}. Requests this server does
 * not serve are answered here (BIND and UDP ASSOCIATE with reply 7, an
 * unknown address type with reply 8) before the error is thrown.
 *
 * On failure the client is closed; close it again with `closeQuietly`.
 *
 * @param client The accepted connection; bytes the client sends after its
 *   request stay buffered in it, for the relay.
 * @param options The client's label, credentials and limits.
 * @returns The version, the target and the authenticated user.
 * @throws {SocksClientError} for anything the client did wrong, or when it
 *   went away or ran out of time; the abort reason when `signal` aborted.
 *
 * @example
 * ```ts
 * const request = await acceptSocks(client, { clientLabel: "127.0.0.1:5555" });
 * // ... dial request.target, then:
 * await writeAll(client, socksSuccess(request));
 * ```
 */
export async function acceptSocks(
  client: BufferedDuplex,
  options: SocksServerOptions,
): Promise<SocksRequest> {
  const label = options.clientLabel;
  const timeoutMs = options.timeoutMs ??
    DEFAULT_TUNNEL_OPTIONS.handshakeTimeoutMs;
  const handshake = new Handshake(client, label, options.credentials);
  try {
    return await withDeadline(
      () => client,
      `SOCKS handshake with client ${label}`,
      { timeoutMs, signal: options.signal },
      () => handshake.run(),
    );
  } catch (error) {
    if (error instanceof SocksClientError) throw error;
    options.signal?.throwIfAborted();
    if (error instanceof TimeoutError) {
      throw new SocksClientError(
        label,
        "timeout",
        `did not finish the SOCKS handshake within ${
          formatDuration(timeoutMs)
        }`,
      );
    }
    throw new SocksClientError(
      label,
      "closed",
      `broke off the SOCKS handshake: ${errorMessage(error)}`,
      { cause: error },
    );
  }
}

/**
 * The answer that the connection to the target is open.
 *
 * @param request What the client asked for (its version counts).
 * @param bound The address the connection leaves from, when known.
 * @returns SOCKS5 `05 00 00 ATYP BND.ADDR BND.PORT`, or SOCKS4 `00 5A PORT IP`.
 */
export function socksSuccess(
  request: SocksRequest,
  bound: HostPort = ANY,
): Uint8Array {
  return socksReply(request.version, SOCKS_REPLY.succeeded, bound);
}

/**
 * The answer that the connection to the target could not be opened, with
 * the reply code that fits the route failure: refused by the destination
 * (5), unreachable or too slow (4), forbidden by the proxy (2), the upstream
 * SOCKS proxy's own code, or a general failure (1). SOCKS4 has one code
 * for all (`5B`).
 *
 * @param request What the client asked for (its version counts).
 * @param error What dialing the target threw.
 * @returns The reply bytes.
 */
export function socksFailure(
  request: SocksRequest,
  error: unknown,
): Uint8Array {
  return socksReply(request.version, replyFor(error));
}

/**
 * The answer to a request this listener's own rules refuse (e.g. a client
 * address that is not allowed): reply 2, "connection not allowed by
 * ruleset" (SOCKS4: `5B`).
 *
 * @param request What the client asked for (its version counts).
 * @returns The reply bytes.
 */
export function socksRefusal(request: SocksRequest): Uint8Array {
  return socksReply(request.version, SOCKS_REPLY.notAllowed);
}

function socksReply(
  version: 4 | 5,
  reply: number,
  bound: HostPort = ANY,
): Uint8Array {
  if (version === SOCKS5_VERSION) {
    return concat(
      Uint8Array.of(SOCKS5_VERSION, reply, 0),
      socksAddressBytes(socksAddressOf(bound.host), bound.port),
    );
  }
  // SOCKS4 has room for IPv4 only; CONNECT clients ignore the field anyway.
  const { host, port } = isIPv4(bound.host) ? bound : ANY;
  return concat(
    Uint8Array.of(
      SOCKS4_REPLY_VERSION,
      reply === SOCKS_REPLY.succeeded ? SOCKS4_GRANTED : SOCKS4_REJECTED,
      port >> 8,
      port & 0xff,
    ),
    ipBytes(host)!,
  );
}

// The reply code for a route failure, read from its properties.
function replyFor(error: unknown): number {
  const failure = routeFailure(error);
  switch (failure?.kind) {
    case "dial":
      // Our own TCP connect failed (to the destination, or to the first
      // proxy); its cause says how.
      if (failure.cause instanceof Deno.errors.ConnectionRefused) {
        return SOCKS_REPLY.connectionRefused;
      }
      return failure.cause instanceof Deno.errors.NetworkUnreachable
        ? SOCKS_REPLY.networkUnreachable
        : SOCKS_REPLY.hostUnreachable;
    case "timeout":
      return SOCKS_REPLY.hostUnreachable;
    case "refused":
      if (failure.status === 403) return SOCKS_REPLY.notAllowed;
      return failure.status >= 500
        ? SOCKS_REPLY.hostUnreachable
        : SOCKS_REPLY.generalFailure;
    case "ws-refused":
      return failure.refusal === "not-allowed"
        ? SOCKS_REPLY.notAllowed
        : failure.refusal === "refused"
        ? SOCKS_REPLY.connectionRefused
        : failure.unreachable
        ? SOCKS_REPLY.hostUnreachable
        : SOCKS_REPLY.generalFailure;
    case "socks":
      return failure.reply !== undefined && failure.reply in SOCKS_REPLIES
        ? failure.reply
        : SOCKS_REPLY.generalFailure;
    default:
      return SOCKS_REPLY.generalFailure;
  }
}

// One client's handshake: the reads, the answers on the way, the errors.
class Handshake {
  readonly #client: BufferedDuplex;
  readonly #label: string;
  readonly #credentials: Credentials | undefined;

  constructor(
    client: BufferedDuplex,
    label: string,
    credentials: Credentials | undefined,
  ) {
    this.#client = client;
    this.#label = label;
    this.#credentials = credentials;
  }

  async run(): Promise<SocksRequest> {
    const [version] = await this.#take(1);
    if (version === SOCKS5_VERSION) return await this.#socks5();
    if (version === SOCKS4_VERSION) return await this.#socks4();
    throw this.#error("protocol", versionProblem(version));
  }

  async #socks5(): Promise<SocksRequest> {
    const [count] = await this.#take(1);
    const methods = await this.#take(count);
    const credentials = this.#credentials;
    const method = credentials ? SOCKS_METHOD.userPass : SOCKS_METHOD.noAuth;
    if (!methods.includes(method)) {
      const offered = Array.from(methods, hexByte).join(", ") || "none";
      await this.#refuse(
        Uint8Array.of(SOCKS5_VERSION, SOCKS_METHOD.noAcceptable),
        credentials ? "auth" : "unsupported",
        credentials
          ? `offered no username/password authentication (methods: ${offered}): this listener requires a user name and password, e.g. curl --proxy-user or socks5h://user:password@host:port`
          : `offered no method this listener accepts (methods: ${offered}; it accepts 0x00, no authentication)`,
      );
    }
    await writeAll(this.#client, Uint8Array.of(SOCKS5_VERSION, method));
    const user = credentials ? await this.#userPass(credentials) : undefined;
    const [version, command, , type] = await this.#take(4);
    if (version !== SOCKS5_VERSION) {
      throw this.#error(
        "protocol",
        `sent a request with version ${
          hexByte(version)
        } after a SOCKS5 greeting`,
      );
    }
    const host = await this.#socks5Host(type);
    const port = await this.#port();
    if (command !== SOCKS_COMMAND.connect) {
      await this.#refuse(
        socksReply(5, SOCKS_REPLY.commandNotSupported),
        "unsupported",
        `asked for ${commandName(command)}: only CONNECT is supported`,
      );
    }
    return { version: 5, target: await this.#target(5, host, port), user };
  }

  async #userPass(expected: Credentials): Promise<string> {
    const [version, userLength] = await this.#take(2);
    if (version !== USER_PASS_VERSION) {
      throw this.#error(
        "protocol",
        `sent username/password version ${
          hexByte(version)
        } (RFC 1929 has 0x01)`,
      );
    }
    const user = await this.#take(userLength);
    const [passwordLength] = await this.#take(1);
    const password = await this.#take(passwordLength);
    const encoder = new TextEncoder();
    // Both compared, in constant time, so that timing tells nothing.
    const userMatches = sameBytes(user, encoder.encode(expected.username));
    const passwordMatches = sameBytes(
      password,
      encoder.encode(expected.password),
    );
    const name = new TextDecoder().decode(user);
    if (!(userMatches && passwordMatches)) {
      await this.#refuse(
        Uint8Array.of(USER_PASS_VERSION, 1),
        "auth",
        `gave a wrong user name or password (user ${JSON.stringify(name)})`,
      );
    }
    await writeAll(this.#client, Uint8Array.of(USER_PASS_VERSION, 0));
    return name;
  }

  async #socks5Host(type: number): Promise<string> {
    switch (type) {
      case SOCKS_ADDRESS_TYPE.ipv4:
        return ipText(await this.#take(4));
      case SOCKS_ADDRESS_TYPE.ipv6:
        return ipText(await this.#take(16));
      case SOCKS_ADDRESS_TYPE.domain: {
        const [length] = await this.#take(1);
        return new TextDecoder().decode(await this.#take(length));
      }
      default:
        // The address's length is unknown, so the request cannot be read on.
        return await this.#refuse(
          socksReply(5, SOCKS_REPLY.addressTypeNotSupported),
          "unsupported",
          `sent address type ${
            hexByte(type)
          } (SOCKS5 has 0x01 IPv4, 0x03 domain name, 0x04 IPv6)`,
        );
    }
  }

  async #socks4(): Promise<SocksRequest> {
    const [command] = await this.#take(1);
    const port = await this.#port();
    const ip = await this.#take(4);
    await this.#nulTerminated("user id");
    // SOCKS4a: the address 0.0.0.x (x ≠ 0) says a host name follows.
    const named = ip[0] === 0 && ip[1] === 0 && ip[2] === 0 && ip[3] !== 0;
    const host = named
      ? new TextDecoder().decode(await this.#nulTerminated("host name"))
      : ipText(ip);
    const rejected = socksReply(4, SOCKS_REPLY.generalFailure);
    if (command !== SOCKS_COMMAND.connect) {
      await this.#refuse(
        rejected,
        "unsupported",
        `asked for SOCKS4 ${commandName(command)}: only CONNECT is supported`,
      );
    }
    if (this.#credentials) {
      await this.#refuse(
        rejected,
        "auth",
        "spoke SOCKS4, which has no password, to a listener that requires one: use SOCKS5 with a user name and password (e.g. curl --socks5-hostname with --proxy-user)",
      );
    }
    return { version: 4, target: await this.#target(4, host, port) };
  }

  // A name that the route could not carry (a CONNECT line is built from
  // it) or port 0 is refused here.
  async #target(
    version: 4 | 5,
    host: string,
    port: number,
  ): Promise<HostPort> {
    if (port !== 0 && (isHostName(host) || isIPv6(host))) return { host, port };
    return await this.#refuse(
      socksReply(version, SOCKS_REPLY.generalFailure),
      "protocol",
      `asked for host ${
        JSON.stringify(host)
      } port ${port}, which is not a valid destination`,
    );
  }

  async #port(): Promise<number> {
    const [high, low] = await this.#take(2);
    return (high << 8) | low;
  }

  // Reads up to a NUL, refusing a string longer than SOCKS4_MAX_STRING.
  async #nulTerminated(what: string): Promise<Uint8Array> {
    const bytes: number[] = [];
    while (true) {
      const [byte] = await this.#take(1);
      if (byte === 0) return Uint8Array.from(bytes);
      if (bytes.length === SOCKS4_MAX_STRING) {
        return await this.#refuse(
          socksReply(4, SOCKS_REPLY.generalFailure),
          "protocol",
          `sent a SOCKS4 ${what} longer than ${SOCKS4_MAX_STRING} bytes`,
        );
      }
      bytes.push(byte);
    }
  }

  // Like BufferedDuplex.take, with this client's error at end of stream
  // whatever `onEnd` the caller gave the BufferedDuplex.
  async #take(n: number): Promise<Uint8Array> {
    while (this.#client.buffered.length < n) {
      if (!(await this.#client.fill())) {
        throw this.#error(
          "closed",
          "closed the connection in the middle of the SOCKS handshake",
        );
      }
    }
    return await this.#client.take(n);
  }

  // Answers, then throws.
  async #refuse(
    reply: Uint8Array,
    problem: SocksClientProblem,
    message: string,
  ): Promise<never> {
    // A client that has gone already cannot be answered; what it did wrong
    // is still the error to report.
    await writeAll(this.#client, reply).catch(() => {});
    throw this.#error(problem, message);
  }

  #error(problem: SocksClientProblem, message: string): SocksClientError {
    return new SocksClientError(this.#label, problem, message);
  }
}

function versionProblem(version: number): string {
  const sent = `sent version ${hexByte(version)}`;
  if (version === 0x16) {
    return `${sent}, the start of a TLS handshake: is this a TLS client on the SOCKS port?`;
  }
  // The first letters of HTTP methods: CONNECT, DELETE, GET, HEAD, OPTIONS,
  // POST, PUT, PATCH, TRACE.
  if ("CDGHOPT".includes(String.fromCharCode(version))) {
    return `${sent} ("${
      String.fromCharCode(version)
    }"): is this an HTTP client on the SOCKS port? Give it the proxy as socks5h://host:port, not http://`;
  }
  return `${sent}: a SOCKS client starts with 0x05 (SOCKS5) or 0x04 (SOCKS4)`;
}

function commandName(command: number): string {
  switch (command) {
    case SOCKS_COMMAND.bind:
      return "BIND";
    case SOCKS_COMMAND.udpAssociate:
      return "UDP ASSOCIATE";
    default:
      return `command ${hexByte(command)}`;
  }
}

function hexByte(byte: number): string {
  return `0x${byte.toString(16).padStart(2, "0")}`;
}
