/**
 * Plain HTTP requests of a local HTTP proxy (`GET http://host/path`): sent
 * on to the upstream proxy in absolute form with the tool's authentication
 * (the client never sees a 407 it cannot answer), or, when the route is
 * direct or ends in a SOCKS proxy, to the origin server in origin form.
 * Upstream connections are kept alive and reused through an
 * {@link UpstreamPool}.
 *
 * ```
 * forwardRequest ─ upstreamFor(route) ─┬─ proxy:  pool or open (hops before it, TLS) ─ absolute form + Proxy-Authorization, 407 rounds
 *                                      └─ origin: pool or dialRoute(route, origin)     ─ origin form
 *                └─ response head → client (hop-by-hop fields dropped, Via added, re-framed) → body
 * ```
 *
 * @module
 */

import type { LocalProxyEntry } from "../config/entry.ts";
import type { TunnelOptions } from "../config/options.ts";
import { errorMessage, ProxyAuthError, routeFailure } from "../errors.ts";
import { formatHostPort, type HostPort } from "../net/address.ts";
import { BufferedDuplex } from "../net/buffered.ts";
import { concat } from "../net/bytes.ts";
import { canonicalHostName } from "../net/dns.ts";
import { closeQuietly, type Duplex, writeAll } from "../net/duplex.ts";
import { logger } from "../observe/log.ts";
import {
  AuthFailure,
  ProxyAuthenticator,
} from "../proxy/auth/authenticator.ts";
import { proxyCredentials } from "../proxy/connector.ts";
import {
  headerValue,
  offersScheme,
  proxyChallenges,
  readResponseHead,
  type ResponseHead,
} from "../proxy/http_head.ts";
import { type DialContext, dialRoute } from "../route/dial.ts";
import { routeFromEnvironment } from "../route/env.ts";
import { dialWithFailover } from "../route/failover.ts";
import { pacLabel } from "../route/pac/engine.ts";
import { proxyFor } from "../route/pac/proxies.ts";
import { requestQuery } from "../route/pac/url.ts";
import { transportFor } from "../route/transport.ts";
import {
  type AuthScheme,
  describeProxy,
  describeRoute,
  type PacRoute,
  type Proxy,
  type Route,
} from "../route/types.ts";
import type { GreetSession } from "../tunnel.ts";
import {
  type AbsoluteTarget,
  appendVia,
  type BodyFraming,
  errorResponse,
  expectsContinue,
  formatRequestHead,
  formatResponseHead,
  frameHeaders,
  type HeaderField,
  HttpMessageError,
  parseAbsoluteTarget,
  persists,
  requestFraming,
  type RequestHead,
  responseFraming,
  stripHopByHop,
} from "./http1.ts";
import { copyBody } from "./http1_body.ts";
import { routeFor } from "./rules.ts";
import type { UpstreamConnection, UpstreamPool } from "./upstream_pool.ts";

const log = logger("http-proxy");

/** Request bodies up to this size are kept, to be sent again after a 407. */
const MAX_REPLAY_BYTES = 1024 * 1024;
/** 407 bodies up to this size are read past; a larger one ends the connection. */
const MAX_SKIPPED_BYTES = 64 * 1024;
const MAX_AUTH_ROUNDS = 4;
/** Response bodies up to this size are read whole and sent with their head. */
const MAX_COALESCED_BYTES = 16 * 1024;

/** Where a plain request goes next. */
type Upstream =
  & (
    | {
      readonly kind: "proxy";
      /** The last hop, which gets the request in absolute form. */
      readonly proxy: Proxy;
      /** The hops before it, which open a tunnel to it. */
      readonly before: Route;
      readonly key: string;
    }
    | {
      readonly kind: "origin";
      /** How the origin server is reached. */
      readonly route: Route;
      readonly key: string;
    }
  )
  & {
    /** The PAC that chose the route, for the log: `(pac corp.pac)`. */
    readonly pac?: string;
  };

/** What answering one request came to, for the log and the caller. */
interface Outcome {
  readonly status: number;
  readonly bytes: number;
  readonly path: string;
  /** Whether the client's connection may carry another request. */
  readonly persist: boolean;
}

/**
 * A failure to answer with a response of this tool's own: 502 when the
 * upstream cannot be reached or broke the exchange, 504 on a timeout.
 */
class UpstreamFailure extends Error {
  constructor(
    readonly status: number,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "UpstreamFailure";
  }
}

/**
 * Answers one plain HTTP request whose head has been read.
 *
 * @param client The client's connection, positioned at the request body.
 * @param head The request head.
 * @param session The entry, its settings and what it may use.
 * @param upstreams Kept-alive upstream connections.
 * @returns Whether the client's connection may carry another request.
 */
export async function forwardRequest(
  client: BufferedDuplex,
  head: RequestHead,
  session: GreetSession,
  upstreams: UpstreamPool,
): Promise<boolean> {
  const started = performance.now();
  let url: AbsoluteTarget | undefined;
  let outcome: Outcome;
  let sent = false;
  // Closing the tunnel (shutdown, a drain timeout) ends a request in
  // flight: its connections are closed, which fails what waits on them.
  const inFlight = new Set<Duplex>([client]);
  const stop = () => inFlight.forEach(closeQuietly);
  session.signal.addEventListener("abort", stop, { once: true });
  try {
    url = parseAbsoluteTarget(head.target);
    outcome = await answer(
      client,
      head,
      url,
      session,
      upstreams,
      () => {
        sent = true;
      },
      inFlight,
    );
  } catch (error) {
    const status = error instanceof HttpMessageError ||
        error instanceof UpstreamFailure
      ? error.status
      : routeFailure(error)?.kind === "timeout"
      ? 504
      : 502;
    if (!sent) {
      await writeAll(client, errorResponse(status, errorMessage(error)))
        .catch(() => {});
    }
    outcome = { status, bytes: 0, path: "", persist: false };
    log.warn(
      `${session.id} ${session.clientLabel} ${head.method} ${
        url ? shown(url) : "(bad target)"
      }: ${status}: ${errorMessage(error)}`,
    );
  } finally {
    session.signal.removeEventListener("abort", stop);
  }
  session.metrics.request(
    formatHostPort(session.entry.source),
    head.method,
    outcome.status,
  );
  if (outcome.path) {
    log.info(
      "{id} {client} {method} {url} {status} {bytes} B {ms} ms {path}",
      () => ({
        id: session.id,
        client: session.clientLabel,
        method: head.method,
        url: shown(url!),
        status: outcome.status,
        bytes: outcome.bytes,
        ms: Math.round(performance.now() - started),
        path: outcome.path,
      }),
    );
  }
  return outcome.persist;
}

// The URL without its query, which may carry secrets, for log lines.
function shown(url: AbsoluteTarget): string {
  return `http://${url.authority}${url.path.replace(/\?.*$/, "?…")}`;
}

async function answer(
  client: BufferedDuplex,
  head: RequestHead,
  url: AbsoluteTarget,
  session: GreetSession,
  upstreams: UpstreamPool,
  responding: () => void,
  inFlight: Set<Duplex>,
  fresh?: UpstreamConnection,
): Promise<Outcome> {
  const { entry, options, context } = session;
  const framing = requestFraming(head);
  const upstream = await upstreamFor(entry, url, context, options);
  const open = async () => {
    const opened = await openUpstream(upstream, url, options, context, session);
    inFlight.add(opened.stream);
    return opened;
  };
  const credentials = upstream.kind === "proxy"
    ? proxyCredentials(upstream.proxy)
    : undefined;
  // An upstream without credentials in the config gets the client's own,
  // and the client its 407s, so that it can authenticate itself.
  const clientAuthorization = upstream.kind === "proxy" && !credentials &&
      entry.clientCredentials === undefined
    ? headerValue(head, "proxy-authorization")
    : undefined;
  const continues = expectsContinue(head);
  const headers = appendVia(
    frameHeaders(stripHopByHop(head.headers), framing),
    head.version,
  );
  const request = (authorization?: string): Uint8Array =>
    formatRequestHead(
      {
        ...head,
        headers: authorization === undefined
          ? headers
          : [...headers, ["Proxy-Authorization", authorization]],
      },
      url,
      upstream.kind === "proxy" ? "absolute" : "origin",
    );
  const taken = fresh ?? upstreams.take(upstream.key);
  if (taken) inFlight.add(taken.stream);
  const reused = fresh === undefined && taken !== undefined;
  let connection = taken ?? await open();
  const path = `${
    upstream.kind === "proxy"
      ? `via ${describeProxy(upstream.proxy)}`
      : describeRoute(upstream.route)
  }${upstream.pac === undefined ? "" : ` ${upstream.pac}`}`;
  // A body that a 407 may make us send again is read whole first, when it
  // is small; a larger one goes on a connection authenticated beforehand.
  // So does a body the client holds back for a 100 (Continue): after a 407
  // to its head, the upstream would read the next round's head as the body.
  let replay: Uint8Array | undefined;
  const mayAsk = credentials !== undefined && connection.auth === undefined;
  if (framing.kind !== "none" && (mayAsk || reused)) {
    if (
      !continues && framing.kind === "length" &&
      framing.length <= MAX_REPLAY_BYTES
    ) {
      replay = await client.take(framing.length);
    } else if (mayAsk && upstream.kind === "proxy") {
      await authenticate(connection, url, credentials!, upstream);
    }
  }
  let exchange: Exchange;
  try {
    exchange = await exchangeWithAuth(connection, {
      request,
      method: head.method,
      uri: `http://${url.authority}${url.path}`,
      credentials,
      preemptiveBasic: upstream.kind === "proxy" &&
        upstream.proxy.preemptiveBasic === true,
      only: upstream.kind === "proxy" ? upstream.proxy.auth : undefined,
      proxyHost: upstream.kind !== "proxy"
        ? undefined
        : upstream.proxy.spnHost === "canonical"
        ? await canonicalHostName(upstream.proxy.host)
        : upstream.proxy.host,
      clientAuthorization,
      sendBody: framing.kind === "none"
        ? undefined
        : (to) =>
          replay
            ? writeAll(to, replay)
            : copyBody(client, to, framing).then(() => {}),
      replayable: framing.kind === "none" || replay !== undefined,
      continues,
      onContinue: () => writeAll(client, CONTINUE),
      reopen: open,
      label: path,
    });
  } catch (error) {
    closeQuietly(connection.stream);
    // A kept-alive connection the upstream had closed meanwhile: once more
    // on a new one, when the request can be sent again.
    if (
      reused && error instanceof StaleConnection &&
      (framing.kind === "none" || replay !== undefined)
    ) {
      return answer(
        client,
        head,
        url,
        session,
        upstreams,
        responding,
        inFlight,
        await open(),
      );
    }
    throw error;
  }
  connection = exchange.connection;
  const response = exchange.response;
  const body = responseFraming(response, head.method);
  const http11 = head.version !== "HTTP/1.0";
  // A body that ends with the connection reaches an HTTP/1.1 client
  // chunked, so that its connection stays open; an HTTP/1.0 client cannot
  // read chunks.
  const out: BodyFraming = body.kind === "close" && http11
    ? { kind: "chunked" }
    : body.kind === "chunked" && !http11
    ? { kind: "close" }
    : body;
  let fields = appendVia(
    frameHeaders(stripHopByHop(response.headers), out),
    response.version,
  );
  // With no credentials of its own, the tool lets the client answer.
  if (response.status === 407 && !credentials) {
    fields = [...fields, ...challengesOf(response)];
  }
  // The client is told whether its connection stays open: an HTTP/1.0
  // client that asked for keep-alive waits for this word, or for a close.
  const persist = persists(head) && out.kind !== "close" && exchange.bodySent;
  if (!persist) fields = [...fields, ["Connection", "close"]];
  else if (!http11) fields = [...fields, ["Connection", "keep-alive"]];
  responding();
  const responseHead = formatResponseHead({ ...response, headers: fields });
  let bytes: number;
  if (
    body.kind === "length" && out.kind === "length" &&
    (body.length <= MAX_COALESCED_BYTES ||
      connection.stream.buffered.length >= body.length)
  ) {
    // A small body goes out in the same write as its head, even when it
    // comes in a packet of its own: one send instead of two is most of
    // the cost of a small request.
    const content = await connection.stream.take(body.length);
    await writeAll(client, concat(responseHead, content));
    bytes = content.length;
  } else {
    await writeAll(client, responseHead);
    bytes = await copyBody(connection.stream, client, body, {
      chunked: out.kind === "chunked",
    });
    if (out.kind === "chunked" && body.kind !== "chunked") {
      await writeAll(client, LAST_CHUNK);
    }
  }
  const upstreamPersists = body.kind !== "close" && persists(response);
  if (upstreamPersists && exchange.bodySent) upstreams.put(connection);
  else closeQuietly(connection.stream);
  return {
    status: response.status,
    bytes,
    path,
    persist,
  };
}

const CONTINUE = new TextEncoder().encode("HTTP/1.1 100 Continue\r\n\r\n");
const LAST_CHUNK = new TextEncoder().encode("0\r\n\r\n");

function challengesOf(response: ResponseHead): HeaderField[] {
  return response.headers.filter(([name]) =>
    name.toLowerCase() === "proxy-authenticate"
  );
}

/**
 * Where a request to `url` goes: to the last proxy of the route when it
 * speaks HTTP, otherwise to the origin server along the route.
 */
async function upstreamFor(
  entry: LocalProxyEntry,
  url: AbsoluteTarget,
  context: DialContext,
  options: TunnelOptions,
): Promise<Upstream> {
  let chosen = routeFor(entry, url);
  let pac: string | undefined;
  if (chosen.kind === "pac") {
    ({ route: chosen, pac } = await pacChoice(chosen, url, context, options));
  }
  const route = chosen.kind === "env"
    ? routeFromEnvironment(context.environment, url)
    : chosen;
  if (route.kind === "chain") {
    const last = route.hops.at(-1)!;
    const proxy = context.health.order(last)[0];
    if (proxy.scheme === "http" || proxy.scheme === "https") {
      const before: Route = route.hops.length === 1
        ? { kind: "direct" }
        : { kind: "chain", hops: route.hops.slice(0, -1) };
      // The key holds credentials, in memory only: connections
      // authenticated as one user are never lent to another.
      return {
        kind: "proxy",
        proxy,
        before,
        key: JSON.stringify(["proxy", proxy, before]),
        pac,
      };
    }
  }
  return {
    kind: "origin",
    route,
    key: JSON.stringify(["origin", formatHostPort(url), route]),
    pac,
  };
}

/**
 * The route a PAC gives a plain request, shown its real URL: its first
 * alternative, with the proxies that follow it up to the next DIRECT as
 * the hop's failover alternatives; DIRECT first means direct.
 */
async function pacChoice(
  route: PacRoute,
  url: AbsoluteTarget,
  context: DialContext,
  options: TunnelOptions,
): Promise<{ route: Route; pac: string }> {
  if (context.pac === undefined) {
    throw new Error(`pac ${route.source}: PAC scripts are not run here`);
  }
  const decision = await context.pac.engineFor(route, options.caCerts).decide(
    requestQuery(`http://${url.authority}${url.path}`, url),
  );
  const hop: Proxy[] = [];
  for (const alternative of decision.alternatives) {
    if (alternative.kind === "direct") break;
    try {
      hop.push(proxyFor(alternative, route, decision.scriptName));
    } catch (error) {
      log.warn(errorMessage(error));
    }
  }
  return {
    route: hop.length === 0
      ? { kind: "direct" }
      : { kind: "chain", hops: [hop] },
    pac: pacLabel(decision, route),
  };
}

async function openUpstream(
  upstream: Upstream,
  url: HostPort,
  options: TunnelOptions,
  context: DialContext,
  session: GreetSession,
): Promise<UpstreamConnection> {
  let stream: Duplex;
  if (upstream.kind === "origin") {
    const dialed = await dialRoute(upstream.route, url, options, context);
    stream = dialed.stream;
    // A refusal by the far end is answered as one, before the request goes.
    await dialed.accepted?.catch((error) => {
      closeQuietly(dialed.stream);
      throw error;
    });
  } else {
    const { proxy, before } = upstream;
    const { dialer } = transportFor(proxy.scheme);
    try {
      stream = before.kind === "chain"
        ? await dialer.handshake(
          (await dialWithFailover(
            before.hops,
            proxy,
            options,
            context,
            session.signal,
          )).stream,
          proxy,
          options,
        )
        : await dialer.dial(proxy, options, session.signal);
      context.health.succeeded(proxy);
    } catch (error) {
      if (routeFailure(error)?.proxyFault) context.health.failed(proxy, error);
      throw error;
    }
  }
  return {
    key: upstream.key,
    stream: new BufferedDuplex(stream, { onEnd: () => new StaleConnection() }),
    requests: 0,
  };
}

/** The upstream closed the connection before answering. */
class StaleConnection extends Error {
  constructor() {
    super("the upstream closed the connection before answering");
    this.name = "StaleConnection";
  }
}

interface ExchangeOptions {
  /** The request head, with a `Proxy-Authorization` value or none. */
  readonly request: (authorization?: string) => Uint8Array;
  readonly method: string;
  readonly uri: string;
  readonly credentials?: { username: string; password: string };
  readonly preemptiveBasic: boolean;
  /** The only scheme to answer with (`auth=`). */
  readonly only?: AuthScheme;
  /** The proxy's host for Kerberos (`HTTP@host`); Negotiate is not tried without it. */
  readonly proxyHost?: string;
  /** The client's own `Proxy-Authorization`, passed on as it is. */
  readonly clientAuthorization?: string;
  /** Sends the request body. */
  readonly sendBody?: (to: Duplex) => Promise<void>;
  /** Whether the body can be sent again after a 407. */
  readonly replayable: boolean;
  /** The client sent `Expect: 100-continue`. */
  readonly continues: boolean;
  /** Tells the client to send its body. */
  readonly onContinue: () => Promise<void>;
  /** Opens a new connection, when the upstream closed after a 407. */
  readonly reopen: () => Promise<UpstreamConnection>;
  /** The upstream, for messages, e.g. `via http://proxy:3128`. */
  readonly label: string;
}

interface Exchange {
  readonly connection: UpstreamConnection;
  readonly response: ResponseHead;
  /** Whether the body was sent (a final answer may come before it). */
  readonly bodySent: boolean;
}

/**
 * Sends a request and reads its final response head, answering the
 * upstream proxy's 407s with the configured credentials.
 */
async function exchangeWithAuth(
  start: UpstreamConnection,
  options: ExchangeOptions,
): Promise<Exchange> {
  let connection = start;
  const auth = connection.auth ??
    new ProxyAuthenticator(options.credentials, options.uri, {
      method: options.method,
      preemptiveBasic: options.preemptiveBasic,
      only: options.only,
      proxyHost: options.proxyHost,
    });
  let authorization = options.clientAuthorization ??
    (connection.auth
      ? connection.auth.next(options.method, options.uri)
      : auth.first?.authorization);
  for (let round = 0;; round++) {
    connection.requests++;
    await writeAll(connection.stream, options.request(authorization));
    let bodySent = false;
    if (options.sendBody && !options.continues) {
      await options.sendBody(connection.stream);
      bodySent = true;
    }
    let response = await readResponseHead(
      connection.stream,
      () => new StaleConnection(),
    );
    while (response.status >= 100 && response.status <= 199) {
      if (response.status === 100 && options.sendBody && !bodySent) {
        await options.onContinue();
        await options.sendBody(connection.stream);
        bodySent = true;
      }
      response = await readResponseHead(
        connection.stream,
        () => new StaleConnection(),
      );
    }
    // Answered with the configured credentials, or with the user's
    // Kerberos ticket when the proxy offers Negotiate.
    const retry = response.status === 407 &&
      options.clientAuthorization === undefined &&
      (options.credentials !== undefined ||
        (options.proxyHost !== undefined &&
          offersScheme(response, "negotiate")));
    if (!retry) {
      if (
        authorization !== undefined &&
        options.clientAuthorization === undefined
      ) {
        connection.auth = auth;
      }
      return {
        connection,
        response,
        bodySent: bodySent || !options.sendBody,
      };
    }
    if (round >= MAX_AUTH_ROUNDS) {
      throw new UpstreamFailure(
        502,
        `the upstream proxy (${options.label}) kept asking for authentication: "${response.statusLine}"`,
      );
    }
    if (bodySent && !options.replayable) {
      throw new UpstreamFailure(
        502,
        `the upstream proxy (${options.label}) asked for authentication after a request body that cannot be sent twice: send the request again`,
      );
    }
    let next;
    try {
      next = auth.answer(proxyChallenges(response));
    } catch (error) {
      if (!(error instanceof AuthFailure)) throw error;
      // Without credentials of its own (Negotiate could not be done), the
      // tool hands the 407 to the client, which may answer it itself.
      if (options.credentials === undefined) {
        return {
          connection,
          response,
          bodySent: bodySent || !options.sendBody,
        };
      }
      throw new UpstreamFailure(
        502,
        new ProxyAuthError(
          options.label.replace(/^via /, ""),
          // Without the query, which may carry secrets: this goes to the log.
          options.uri.replace(/\?.*$/, "?…"),
          response.statusLine,
          error.failure,
          error.detail,
        ).message,
      );
    }
    authorization = next.authorization;
    // A body announced and not sent (Expect: 100-continue) is still due on
    // this connection: the next head cannot follow on it.
    const bodyDue = options.sendBody !== undefined && !bodySent;
    if (
      bodyDue ||
      !(await skipResponseBody(connection.stream, response, options.method))
    ) {
      if (next.sameConnection) {
        throw new UpstreamFailure(
          502,
          bodyDue
            ? `the upstream proxy (${options.label}) asked for ${next.scheme} authentication while the request body waited for a 100 (Continue): send the request again`
            : `upstream proxy broke off the ${next.scheme} handshake by closing the connection`,
        );
      }
      closeQuietly(connection.stream);
      connection = await options.reopen();
    }
  }
}

/**
 * Reads past a response's body so that the connection can carry the next
 * request. Returns `false` when it cannot (the body ends with the
 * connection, or is too large to be worth reading).
 */
async function skipResponseBody(
  stream: BufferedDuplex,
  response: ResponseHead,
  method: string,
): Promise<boolean> {
  const framing = responseFraming(response, method);
  if (framing.kind === "close" || !persists(response)) return false;
  if (framing.kind === "length" && framing.length > MAX_SKIPPED_BYTES) {
    return false;
  }
  await copyBody(stream, DISCARD, framing);
  return true;
}

/** A sink for bodies nobody reads. */
const DISCARD: Duplex = {
  read: () => Promise.resolve(null),
  write: (data) => Promise.resolve(data.length),
  closeWrite: () => Promise.resolve(),
  close: () => {},
};

/**
 * Authenticates a new upstream connection before a request whose body
 * cannot be sent twice: `OPTIONS` with `Max-Forwards: 1`, which the proxy
 * authenticates and passes on with `Max-Forwards: 0`, so that the next hop
 * answers it itself (RFC 9110 §7.6.2). Not `Max-Forwards: 0`: squid
 * answers that one with 501 at once, before asking for credentials.
 */
async function authenticate(
  connection: UpstreamConnection,
  url: AbsoluteTarget,
  credentials: { username: string; password: string },
  upstream: Extract<Upstream, { kind: "proxy" }>,
): Promise<void> {
  const uri = `http://${url.authority}/`;
  const head: RequestHead = {
    method: "OPTIONS",
    target: uri,
    version: "HTTP/1.1",
    headers: [["Max-Forwards", "1"], ["Content-Length", "0"]],
  };
  const { response } = await exchangeWithAuth(connection, {
    request: (authorization) =>
      formatRequestHead(
        {
          ...head,
          headers: authorization === undefined
            ? head.headers
            : [...head.headers, ["Proxy-Authorization", authorization]],
        },
        { ...url, path: "/" },
        "absolute",
      ),
    method: "OPTIONS",
    uri,
    credentials,
    preemptiveBasic: upstream.proxy.preemptiveBasic === true,
    only: upstream.proxy.auth,
    replayable: true,
    continues: false,
    onContinue: () => Promise.resolve(),
    reopen: () => Promise.reject(new StaleConnection()),
    label: `via ${describeProxy(upstream.proxy)}`,
  });
  if (!(await skipResponseBody(connection.stream, response, "OPTIONS"))) {
    throw new UpstreamFailure(
      502,
      `upstream proxy ${
        describeProxy(upstream.proxy)
      } closed the connection after authenticating it (${response.statusLine})`,
    );
  }
}
