/**
 * The HTTP `CONNECT` handshake (RFC 9110 §9.3.6): the request, and the
 * exchange over a stream with its authentication rounds; the connector for
 * http:// and https:// proxies.
 *
 * @module
 */

import {
  ProxyAuthError,
  ProxyProtocolError,
  ProxyRefusedError,
} from "../errors.ts";
import { formatHostPort, type HostPort } from "../net/address.ts";
import { canonicalHostName } from "../net/dns.ts";
import { BufferedDuplex } from "../net/buffered.ts";
import { closeQuietly, type Duplex, writeAll } from "../net/duplex.ts";
import { logger } from "../observe/log.ts";
import type { AuthScheme } from "../route/types.ts";
import { USER_AGENT } from "../version.ts";
import {
  type AuthAnswer,
  AuthFailure,
  type Credentials,
  ProxyAuthenticator,
} from "./auth/authenticator.ts";
import type { KerberosClient } from "./auth/negotiate.ts";
import {
  type ConnectObserver,
  type Connector,
  proxyCredentials,
} from "./connector.ts";
import { withDeadline } from "./deadline.ts";
import {
  headerValue,
  keepsAlive,
  proxyChallenges,
  readResponseHead,
  type ResponseHead,
} from "./http_head.ts";

/**
 * Builds a `CONNECT` request for `target`.
 *
 * @param target The destination the proxy should connect to.
 * @param extraHeaders More header lines, e.g. `Proxy-Authorization`.
 * @returns The whole request head, ready for one write.
 *
 * @example
 * ```ts
 * buildConnectRequest({ host: "::1", port: 22 });
 * // "CONNECT [::1]:22 HTTP/1.1\r\nHost: [::1]:22\r\nUser-Agent: …\r\n\r\n"
 * ```
 */
export function buildConnectRequest(
  target: HostPort,
  extraHeaders: ReadonlyArray<readonly [string, string]> = [],
): string {
  const authority = formatHostPort(target);
  const lines = [
    `CONNECT ${authority} HTTP/1.1`,
    `Host: ${authority}`,
    `User-Agent: ${USER_AGENT}`,
    ...extraHeaders.map(([name, value]) => `${name}: ${value}`),
  ];
  return lines.join("\r\n") + "\r\n\r\n";
}

/** Options for {@link httpConnect}. */
export interface HttpConnectOptions {
  /** `host:port` of the proxy, for messages. */
  readonly proxyLabel: string;
  /** Limit for the whole exchange, authentication rounds included. */
  readonly timeoutMs: number;
  /** Gives up, closing the connection, when aborted. */
  readonly signal?: AbortSignal;
  /** Credentials for a proxy that answers 407. */
  readonly credentials?: Credentials;
  /**
   * The proxy's host as written, for Negotiate's `HTTP@<host>`.
   * @default the host part of `proxyLabel`
   */
  readonly proxyHost?: string;
  /** Makes Negotiate tokens. @default GSSAPI through FFI */
  readonly kerberos?: KerberosClient;
  /** Send Basic credentials with the first request. */
  readonly preemptiveBasic?: boolean;
  /** The only scheme to answer 407s with (`auth=`). */
  readonly auth?: AuthScheme;
  /** Ask Kerberos for the proxy's canonical name (`spn-host=canonical`). */
  readonly spnHost?: "canonical";
  /** Opens a new connection to the proxy, when it closed the last one. */
  readonly reconnect?: () => Promise<Duplex>;
  /** Told of every response and credential, e.g. by `probe`. */
  readonly observer?: ConnectObserver;
}

const MAX_AUTH_ROUNDS = 4;
const MAX_INTERIM_RESPONSES = 8;
// Bounded by the proxies and users of the config.
const TOOK_NTLM = new Set<string>();
const MAX_SKIPPED_BODY_BYTES = 1024 * 1024;
const MAX_LINE_BYTES = 8192;
const MAX_ANNOUNCED = 1024;

const log = logger("proxy-auth");
// What was logged at info level already: once per proxy and scheme.
const announced = new Set<string>();

/**
 * Asks the proxy at the other end of `stream` to open a tunnel to `target`,
 * answering 407 challenges when credentials are given. Nothing is read past
 * the final response head: bytes the destination sent right after the
 * proxy's `200` come out of the returned stream first.
 *
 * Takes ownership of `stream`: on failure, every connection it used is
 * closed.
 *
 * @param stream An open connection to the proxy.
 * @param target Where the tunnel should lead.
 * @param options The proxy's label, time limit, credentials.
 * @returns The tunnel, and the proxy's response head.
 * @throws {ProxyAuthError} when authentication is needed and fails.
 * @throws {ProxyRefusedError} when the status is not 2xx.
 * @throws {ProxyProtocolError} when the response is not HTTP or too large.
 * @throws {TimeoutError} when the exchange did not finish in time.
 */
export async function httpConnect(
  stream: Duplex,
  target: HostPort,
  options: HttpConnectOptions,
): Promise<{ tunnel: Duplex; head: ResponseHead }> {
  const authority = formatHostPort(target);
  let current = stream;
  // Which proxies took NTLM, by proxy and user, so that the next CONNECT
  // opens with NTLM instead of asking first to be told to.
  const ntlmKey = `${options.proxyLabel} ${options.credentials?.username}`;
  const what = `CONNECT ${authority} through proxy ${options.proxyLabel}`;
  return await withDeadline(() => current, what, options, async () => {
    const written = options.proxyHost ??
      options.proxyLabel.replace(/:\d+$/, "");
    const proxyHost = options.spnHost === "canonical"
      ? await canonicalHostName(written)
      : written;
    // Built inside the deadline: if it throws, the stream is closed too.
    using auth = new ProxyAuthenticator(options.credentials, authority, {
      preemptiveBasic: options.preemptiveBasic,
      only: options.auth,
      expectNtlm: TOOK_NTLM.has(ntlmKey),
      proxyHost,
      kerberos: options.kerberos,
    });
    let answer = auth.first;
    let pending: Uint8Array = new Uint8Array(0);
    for (let round = 0;; round++) {
      if (answer) options.observer?.authenticating(answer.scheme);
      const headers: [string, string][] = answer
        ? [["Proxy-Authorization", answer.authorization], [
          "Proxy-Connection",
          "Keep-Alive",
        ]]
        : [];
      await writeAll(
        current,
        new TextEncoder().encode(buildConnectRequest(target, headers)),
      );
      const input = new BufferedDuplex(current, { initial: pending });
      const closed = () =>
        new ProxyProtocolError(
          `proxy ${options.proxyLabel} closed the connection before answering CONNECT ${authority}`,
        );
      let head = await readResponseHead(input, closed);
      // Interim answers (100 Continue, 103) come before the real one.
      for (let interim = 0; head.status >= 100 && head.status <= 199;) {
        if (++interim > MAX_INTERIM_RESPONSES) {
          throw new ProxyProtocolError(
            `proxy ${options.proxyLabel} sent more than ${MAX_INTERIM_RESPONSES} interim (1xx) answers to CONNECT ${authority}`,
          );
        }
        head = await readResponseHead(input, closed);
      }
      const rest = input.buffered;
      options.observer?.response(head);
      if (head.status >= 200 && head.status <= 299) {
        if (answer) logScheme(options.proxyLabel, authority, answer, auth);
        if (answer?.scheme === "NTLM") TOOK_NTLM.add(ntlmKey);
        else TOOK_NTLM.delete(ntlmKey);
        return { tunnel: new BufferedDuplex(current, { initial: rest }), head };
      }
      if (head.status !== 407 || round >= MAX_AUTH_ROUNDS) {
        throw new ProxyRefusedError(
          options.proxyLabel,
          authority,
          head.status,
          head.statusLine,
          headerValue(head, "x-squid-error"),
        );
      }
      try {
        answer = auth.answer(proxyChallenges(head));
      } catch (error) {
        if (!(error instanceof AuthFailure)) throw error;
        throw new ProxyAuthError(
          options.proxyLabel,
          authority,
          head.statusLine,
          error.failure,
          error.detail,
          { cause: error.cause },
        );
      }
      const after = keepsAlive(head)
        ? await skipBody(current, head, rest)
        : undefined;
      if (after !== undefined) {
        pending = after;
        continue;
      }
      if (answer.sameConnection || !options.reconnect) {
        throw new ProxyAuthError(
          options.proxyLabel,
          authority,
          head.statusLine,
          "handshake-failed",
          `${answer.scheme} handshake by closing the connection`,
        );
      }
      closeQuietly(current);
      current = await options.reconnect();
      pending = new Uint8Array(0);
    }
  });
}

/**
 * Logs the scheme a tunnel authenticated with, and why Negotiate was passed
 * over: at debug level for every tunnel, at info once per proxy.
 */
function logScheme(
  proxy: string,
  target: string,
  answer: AuthAnswer,
  auth: ProxyAuthenticator,
): void {
  const scheme = answer.detail
    ? `${answer.scheme} (${answer.detail})`
    : answer.scheme;
  const skipped = auth.kerberosProblem
    ? `, Negotiate not used: ${auth.kerberosProblem.message}`
    : "";
  log.debug(`CONNECT ${target} through proxy ${proxy}: ${scheme}${skipped}`);
  const key = `${proxy} ${answer.scheme} ${auth.kerberosProblem?.problem}`;
  if (announced.has(key)) return;
  if (announced.size >= MAX_ANNOUNCED) announced.clear();
  announced.add(key);
  log.info(`proxy ${proxy} authenticates with ${scheme}${skipped}`);
}

/**
 * Reads past a response body framed by Content-Length or chunked encoding.
 * Returns the bytes after the body, or `undefined` when the body is not
 * framed (it ends with the connection) or too large to skip.
 */
async function skipBody(
  stream: Duplex,
  head: ResponseHead,
  rest: Uint8Array,
): Promise<Uint8Array | undefined> {
  const input = new BufferedDuplex(stream, {
    initial: rest,
    onEnd: () =>
      new ProxyProtocolError("proxy closed the connection mid-response"),
  });
  const line = () =>
    input.line(
      MAX_LINE_BYTES,
      () => new ProxyProtocolError("proxy sent an overlong line"),
    );
  // Every byte counts against the limit, chunk sizes before they are read.
  const within = (more: number) =>
    input.consumed + more <= MAX_SKIPPED_BODY_BYTES;
  if (/chunked/i.test(headerValue(head, "transfer-encoding") ?? "")) {
    while (true) {
      const text = await line();
      const size = /^[0-9A-Fa-f]{1,8}(;|$)/.test(text)
        ? parseInt(text, 16)
        : NaN;
      if (Number.isNaN(size) || !within(size)) return undefined;
      if (size === 0) break;
      await input.skip(size);
      await line();
    }
    while ((await line()) !== "") {
      /* trailer fields */
      if (!within(0)) return undefined;
    }
    return input.buffered;
  }
  const length = headerValue(head, "content-length");
  if (length === undefined || !/^\d+$/.test(length)) return undefined;
  if (Number(length) > MAX_SKIPPED_BODY_BYTES) return undefined;
  await input.skip(Number(length));
  return input.buffered;
}

/** CONNECT, for http:// and https:// proxies. */
export const httpConnector: Connector = {
  async connect(stream, target, request) {
    const { tunnel } = await httpConnect(stream, target, {
      proxyLabel: formatHostPort(request.proxy),
      timeoutMs: request.timeoutMs,
      signal: request.signal,
      credentials: proxyCredentials(request.proxy),
      proxyHost: request.proxy.host,
      preemptiveBasic: request.proxy.preemptiveBasic,
      auth: request.proxy.auth,
      spnHost: request.proxy.spnHost,
      reconnect: request.reconnect,
      observer: request.observer,
    });
    return tunnel;
  },
};
