/**
 * The SOCKS5 handshake (RFC 1928) with username/password authentication
 * (RFC 1929): message building and reply decoding are pure; the exchange
 * runs over any {@link Duplex}.
 *
 * @module
 */

import { lookup } from "node:dns/promises";
import { DialError, ProxyProtocolError, SocksError } from "../errors.ts";
import { formatHostPort, type HostPort } from "../net/address.ts";
import { BufferedDuplex } from "../net/buffered.ts";
import { concat } from "../net/bytes.ts";
import { type Duplex, writeAll } from "../net/duplex.ts";
import type { Credentials } from "./auth/authenticator.ts";
import { type Connector, proxyCredentials } from "./connector.ts";
import { withDeadline } from "./deadline.ts";
import {
  SOCKS5_VERSION,
  SOCKS_ADDRESS_TYPE,
  SOCKS_COMMAND,
  SOCKS_METHOD,
  SOCKS_REPLIES,
  type SocksAddress,
  socksAddressBytes,
  socksAddressOf,
  USER_PASS_VERSION,
} from "./socks_wire.ts";

// Where the client's callers have always found the meanings.
export { SOCKS_REPLIES };

/**
 * The client greeting: the methods offered.
 *
 * @param withCredentials Offer username/password as well as no authentication.
 * @returns The greeting bytes.
 */
export function socksGreeting(withCredentials: boolean): Uint8Array {
  return withCredentials
    ? Uint8Array.of(
      SOCKS5_VERSION,
      2,
      SOCKS_METHOD.noAuth,
      SOCKS_METHOD.userPass,
    )
    : Uint8Array.of(SOCKS5_VERSION, 1, SOCKS_METHOD.noAuth);
}

/**
 * The username/password request (RFC 1929).
 *
 * @param credentials User name and password, each at most 255 UTF-8 bytes.
 * @returns The request bytes.
 * @throws {Error} when either is too long.
 */
export function socksUserPass(credentials: Credentials): Uint8Array {
  const user = new TextEncoder().encode(credentials.username);
  const pass = new TextEncoder().encode(credentials.password);
  if (user.length > 255 || pass.length > 255) {
    throw new Error("SOCKS5 user names and passwords are limited to 255 bytes");
  }
  return Uint8Array.from([
    USER_PASS_VERSION,
    user.length,
    ...user,
    pass.length,
    ...pass,
  ]);
}

/**
 * The CONNECT request.
 *
 * @param address IPv4, IPv6 or a domain name for the proxy to resolve.
 * @param port The destination port.
 * @returns The request bytes.
 */
export function socksConnectRequest(
  address: SocksAddress,
  port: number,
): Uint8Array {
  return concat(
    Uint8Array.of(SOCKS5_VERSION, SOCKS_COMMAND.connect, 0),
    socksAddressBytes(address, port),
  );
}

/**
 * How long a CONNECT reply is, once its first bytes are known.
 *
 * @param head The bytes received so far (at least 5 for a domain reply).
 * @returns The total length, or `undefined` when more bytes are needed.
 * @throws {ProxyProtocolError} for a reply that is not SOCKS5.
 */
export function socksReplyLength(head: Uint8Array): number | undefined {
  if (head.length >= 1 && head[0] !== SOCKS5_VERSION) {
    throw new ProxyProtocolError(
      `proxy did not answer with SOCKS5 (version byte ${head[0]})`,
    );
  }
  if (head.length < 4) return undefined;
  switch (head[3]) {
    case SOCKS_ADDRESS_TYPE.ipv4:
      return 4 + 4 + 2;
    case SOCKS_ADDRESS_TYPE.ipv6:
      return 4 + 16 + 2;
    case SOCKS_ADDRESS_TYPE.domain:
      return head.length < 5 ? undefined : 4 + 1 + head[4] + 2;
    default:
      throw new ProxyProtocolError(
        `SOCKS5 reply with unknown address type ${head[3]}`,
      );
  }
}

/** Options for {@link socks5Connect}. */
export interface Socks5Options {
  /** `host:port` of the proxy, for messages. */
  readonly proxyLabel: string;
  /** Resolve the destination here (socks5://) rather than at the proxy (socks5h://). */
  readonly resolveLocally: boolean;
  /** Credentials, when the proxy wants them. */
  readonly credentials?: Credentials;
  /** Limit for the whole exchange. */
  readonly timeoutMs: number;
  /** Gives up, closing the stream, when aborted. */
  readonly signal?: AbortSignal;
}

/**
 * Asks the SOCKS5 proxy at the other end of `stream` for a connection to
 * `target`. Takes ownership of `stream`: on failure it is closed.
 *
 * @param stream An open connection to the proxy.
 * @param target Where the tunnel should lead.
 * @param options Resolution, credentials and limits.
 * @returns The tunnel.
 * @throws {SocksError} when the proxy refuses; {@link TimeoutError},
 *   {@link ProxyProtocolError}, or {@link DialError} for a name that does not resolve.
 */
export async function socks5Connect(
  stream: Duplex,
  target: HostPort,
  options: Socks5Options,
): Promise<Duplex> {
  const label = formatHostPort(target);
  const input = new BufferedDuplex(stream, {
    // Replies are short: small reads keep a setup's garbage small.
    chunkBytes: 512,
    onEnd: () =>
      new ProxyProtocolError(
        `SOCKS5 proxy ${options.proxyLabel} closed the connection during the handshake`,
      ),
  });
  const what = `SOCKS5 CONNECT ${label} through proxy ${options.proxyLabel}`;
  return await withDeadline(() => stream, what, options, async () => {
    const address = await socksAddress(target, options.resolveLocally);
    await writeAll(stream, socksGreeting(options.credentials !== undefined));
    const [version, method] = await input.take(2);
    if (version !== SOCKS5_VERSION) {
      throw new ProxyProtocolError(
        `proxy did not answer with SOCKS5 (version byte ${version})`,
      );
    }
    if (method === SOCKS_METHOD.userPass && options.credentials) {
      await writeAll(stream, socksUserPass(options.credentials));
      const [, status] = await input.take(2);
      if (status !== 0) {
        throw new SocksError(
          `SOCKS5 proxy ${options.proxyLabel} rejected the user name or password`,
        );
      }
    } else if (method !== SOCKS_METHOD.noAuth) {
      throw new SocksError(
        method === SOCKS_METHOD.noAcceptable ||
          method === SOCKS_METHOD.userPass
          ? `SOCKS5 proxy ${options.proxyLabel} requires a user name and password: add user:password to the proxy URL`
          : `SOCKS5 proxy ${options.proxyLabel} asked for an authentication method this tool does not support (${method})`,
      );
    }
    await writeAll(stream, socksConnectRequest(address, target.port));
    let reply = await input.take(4);
    let length = socksReplyLength(reply);
    while (length === undefined) {
      reply = concat(reply, await input.take(1));
      length = socksReplyLength(reply);
    }
    reply = concat(reply, await input.take(length - reply.length));
    if (reply[1] !== 0) {
      const meaning = SOCKS_REPLIES[reply[1]] ?? `reply ${reply[1]}`;
      throw new SocksError(
        `SOCKS5 proxy ${options.proxyLabel} refused CONNECT to ${label}: ${meaning} (reply ${
          reply[1]
        })`,
        { reply: reply[1] },
      );
    }
    return input;
  });
}

async function socksAddress(
  target: HostPort,
  resolveLocally: boolean,
): Promise<SocksAddress> {
  const given = socksAddressOf(target.host);
  if (given.type !== "domain" || !resolveLocally) return given;
  try {
    const { address, family } = await lookup(target.host);
    return family === 6 ? { type: "ipv6", address } : { type: "ipv4", address };
  } catch (error) {
    throw new DialError(
      `${
        formatHostPort(target)
      } (name not resolved here; socks5h:// lets the proxy resolve it)`,
      { cause: error },
    );
  }
}

/** SOCKS5, for socks5:// (resolving here) and socks5h:// proxies. */
export const socks5Connector: Connector = {
  connect(stream, target, request) {
    return socks5Connect(stream, target, {
      proxyLabel: formatHostPort(request.proxy),
      resolveLocally: request.proxy.scheme === "socks5",
      credentials: proxyCredentials(request.proxy),
      timeoutMs: request.timeoutMs,
      signal: request.signal,
    });
  },
};
