/**
 * The far end's request handler: decides what each HTTP request gets. A
 * WebSocket upgrade for httptunneling.v1 on the tunnel path is checked in
 * this order — rate limit, token, target header, tunnel limit, allow
 * rules, connect — and answered 101 only with the target connected;
 * any refusal is a status, an `X-Httptunneling-Refusal` word and a
 * one-line body. An upgrade for httptunneling.v2 is checked for rate
 * limit and token only, and carries a session (./sessions.ts) whose
 * streams get the same tunnel limit, allow rules and connect, answered
 * with OPENED or REFUSE. A request of the poll transport (lib/poll/) on
 * the tunnel path is checked for rate limit and token as well, and carries
 * a session the same way. Every other request gets the plain web site (404
 * or `--site` files). Keeps the open tunnels (v1 tunnels and v2 streams
 * alike) and the counters.
 *
 * Requests come from `Deno.serve` ({@link FarEnd.handle}), or, for a v2
 * upgrade on a TLS connection serve accepted, from the listener itself
 * ({@link FarEnd.answer} with its own upgrader): the checks are the same
 * code either way, only the WebSocket differs.
 *
 * ```
 * handle ─▶ answer ─┬─ not a tunnel request → siteResponse
 *   listener ─┘     ├─ v1: admit (429/401/400/503/403) → connectTarget (502/504) → Deno.upgradeWebSocket → startTunnel
 *                   ├─ v2: admit (429/401/503) → upgrader (Deno's, or serve's own) → ServeSessions.run ─ OPEN → #openStream → relay
 *                   └─ poll: admit (429/401/503) → PollServer.handle ─ open → ServeSessions.run
 * ```
 *
 * @module
 */

import { lookup } from "node:dns/promises";
import {
  DialError,
  errorMessage,
  type FailureReason,
  TimeoutError,
} from "../errors.ts";
import {
  formatHostPort,
  type HostPort,
  isHostName,
  isIPv4,
  isIPv6,
  parsePort,
  splitHostPort,
} from "../net/address.ts";
import { dialTcp } from "../net/tcp.ts";
import { formatBytes, logger } from "../observe/log.ts";
import { Metrics } from "../observe/metrics.ts";
import { newCounters, relay } from "../relay.ts";
import type { SessionEndpoint, SessionStream } from "../session/endpoint.ts";
import type { RefuseCode } from "../session/frame.ts";
import { formatDuration } from "../time/duration.ts";
import { settledWithin } from "../time/settle.ts";
import {
  REFUSAL_HEADER,
  SUBPROTOCOL,
  SUBPROTOCOL_V2,
  TARGET_HEADER,
  type WsRefusal,
} from "../ws/handshake.ts";
import {
  addressRulesCover,
  type AllowRule,
  matchAddress,
  matchName,
} from "./allow.ts";
import type { ServeSettings } from "./config.ts";
import { FailureLimiter, sourceKey } from "./rate_limit.ts";
import { ServeSessions, type SessionOwner } from "./sessions.ts";
import { type PollRefusal, PollServer } from "../poll/server.ts";
import { POLL_HEADER } from "../poll/wire.ts";
import { siteResponse } from "./site.ts";
import { type SessionUpgrader, upgradeWebSocket } from "./transport.ts";
import { bearerToken, matchToken, type NamedToken } from "./tokens.ts";
import { startTunnel, type WsTunnel } from "./tunnel.ts";

const log = logger("serve");

// How long shutdown waits for closed tunnels to finish their close.
const CLOSE_WAIT_MS = 2_000;

/** The refusal words of the protocol: a tunnel's, and a poll request's. */
export type RefusalWord = WsRefusal | PollRefusal["word"];

/** What the handler needs besides the reloadable settings. */
export interface FarEndOptions {
  /** The tunnel path, e.g. `/` or `/t`. */
  readonly path: string;
  /** The site directory's real path, or none for 404 to everything. */
  readonly siteRoot?: string;
  /** Seconds without a pong before a tunnel is closed (WebSocket idleTimeout). */
  readonly heartbeatSeconds: number;
  /** Failed authentications per source and window before 429. */
  readonly limiter?: FailureLimiter;
  /** The name the counters are kept under, e.g. the listen address. */
  readonly label: string;
  /**
   * Reverse proxies whose `X-Forwarded-For` is believed: rules of
   * addresses and blocks (any port). @default none
   */
  readonly trustedProxies?: readonly AllowRule[];
  /**
   * How long a v2 session whose WebSocket was lost is kept for a resume.
   * @default 10 minutes
   */
  readonly resumeWindowMs?: number;
}

/** The default of {@link FarEndOptions.resumeWindowMs}: 10 minutes. */
export const DEFAULT_RESUME_WINDOW_MS = 10 * 60_000;

/** An open tunnel as /status shows it. */
export interface OpenTunnel {
  readonly id: number;
  /** The session and stream, for a v2 stream: `session 1a2b3c4d… stream 3`. */
  readonly via?: string;
  readonly token: string;
  readonly client: string;
  readonly target: string;
  readonly startedAt: number;
  readonly tunnel: WsTunnel;
}

/** The far end: settings, tokens, open tunnels, counters. */
export class FarEnd {
  /** The settings in force; replaced on reload. */
  settings: ServeSettings;
  /** The tokens in force; replaced on reload. */
  tokens: readonly NamedToken[];
  /** Open tunnels. */
  readonly open: Set<OpenTunnel> = new Set();
  /** Tunnel counters for /metrics. */
  readonly metrics: Metrics = new Metrics();
  /** Refusals by word, for /metrics. */
  readonly refusals: Map<RefusalWord, number> = new Map();
  readonly #options: FarEndOptions;
  readonly #limiter: FailureLimiter;
  /** The v2 sessions. */
  readonly sessions: ServeSessions;
  readonly #polls: PollServer;
  #nextId = 1;
  #stopping = false;
  #connecting = 0;
  #closed = new Set<Promise<unknown>>();

  /**
   * @param settings The first settings.
   * @param tokens The first tokens.
   * @param options Path, site, heartbeat, limiter.
   */
  constructor(
    settings: ServeSettings,
    tokens: readonly NamedToken[],
    options: FarEndOptions,
  ) {
    this.settings = settings;
    this.tokens = tokens;
    this.#options = options;
    this.#limiter = options.limiter ?? new FailureLimiter();
    this.sessions = new ServeSessions({
      resumeWindowMs: options.resumeWindowMs ?? DEFAULT_RESUME_WINDOW_MS,
      onOpen: (endpoint, stream, host, port, owner) =>
        this.#openStream(endpoint, stream, { host, port }, owner),
    });
    this.#polls = new PollServer(this.sessions, {
      idleMs: options.heartbeatSeconds * 1000,
    });
  }

  /** The tunnel path. */
  get path(): string {
    return this.#options.path;
  }

  /**
   * Answers one request (the `Deno.serve` handler).
   *
   * @param request The request.
   * @param info Where it came from.
   * @returns The response: 101, a refusal, or the web site's answer.
   */
  handle(
    request: Request,
    info: Deno.ServeHandlerInfo<Deno.NetAddr>,
  ): Promise<Response> {
    return this.answer(request, info.remoteAddr, upgradeWebSocket);
  }

  /**
   * Answers one request, whoever read it: `Deno.serve` ({@link handle}),
   * or serve's own TLS listener for a v2 upgrade it answers itself.
   *
   * @param request The request.
   * @param remote Where it came from.
   * @param upgradeSession Turns an admitted v2 upgrade into its
   *   transport; a v1 upgrade is always `Deno.upgradeWebSocket`'s.
   * @returns A response (a refusal, the web site's answer, a v1 101), or
   *   the upgrader's answer for an admitted v2 upgrade.
   */
  async answer<A>(
    request: Request,
    remote: Deno.NetAddr,
    upgradeSession: SessionUpgrader<A>,
  ): Promise<Response | A> {
    const poll = this.#isPollRequest(request);
    const stripped = !poll && this.#isStrippedUpgrade(request);
    if (!poll && !stripped && !this.#isTunnelRequest(request)) {
      return await siteResponse(request, this.#options.siteRoot);
    }
    const peer = formatHostPort({
      host: remote.hostname,
      port: remote.port,
    });
    const address = forwardedClient(
      remote.hostname,
      request.headers.get("x-forwarded-for"),
      (each) =>
        matchAddress(this.#options.trustedProxies ?? [], each, 1) !== undefined,
    );
    const client = address === remote.hostname
      ? peer
      : `${address} (via ${peer})`;
    if (poll) return await this.#poll(request, address, client);
    if (stripped) {
      // Said to token holders only: to others the path stays a web site.
      const admitted = this.#admit(request, address, client, false);
      if (admitted instanceof Response) return admitted;
      return this.#refuse(
        refusal(
          426,
          "no-upgrade",
          "a proxy on the way removed the Upgrade header; the poll transport gets through",
        ),
        admitted.name,
        client,
      );
    }
    const started = performance.now();
    const v2 = offers(request, SUBPROTOCOL_V2);
    const admitted = this.#admit(request, address, client, !v2);
    if (admitted instanceof Response) return admitted;
    const { name, target } = admitted;
    if (target === undefined) {
      return this.#upgradeSession(request, upgradeSession, name, client);
    }
    this.#connecting++;
    let conn: Deno.TcpConn;
    try {
      const address = await this.#allowedAddress(target);
      if (isRefusal(address)) {
        return this.#refuse(address, name, client, formatHostPort(target));
      }
      try {
        conn = await dialTcp(address, {
          connectTimeoutMs: this.settings.connectTimeoutMs,
          keepAlive: true,
        });
      } catch (error) {
        return this.#refuse(
          connectFailure(error, target, this.settings.connectTimeoutMs),
          name,
          client,
          formatHostPort(target),
        );
      }
    } finally {
      this.#connecting--;
    }
    let upgraded;
    try {
      upgraded = Deno.upgradeWebSocket(request, {
        protocol: SUBPROTOCOL,
        idleTimeout: this.#options.heartbeatSeconds,
      });
    } catch (error) {
      conn.close();
      return this.#refuse(
        refusal(
          400,
          "bad-request",
          `not a valid upgrade: ${errorMessage(error)}`,
        ),
        name,
        client,
        formatHostPort(target),
      );
    }
    this.metrics.opened(performance.now() - started);
    this.#track(
      startTunnel(upgraded.socket, conn),
      name,
      client,
      target,
    );
    return upgraded.response;
  }

  /** From now on tunnel requests get 503: the server is shutting down. */
  stopAccepting(): void {
    this.#stopping = true;
  }

  /** Tunnels open or connecting, for the limit. */
  get active(): number {
    return this.open.size + this.#connecting;
  }

  /**
   * Waits up to `ms` for the open tunnels to end, then ends the rest with
   * close 1001, and waits for them.
   *
   * @param ms How long tunnels may finish on their own.
   */
  async drain(ms: number): Promise<void> {
    const all = Promise.all([...this.open].map((each) => each.tunnel.done));
    if (!await settledWithin(all, ms)) {
      log.info(
        `${this.open.size} tunnel(s) still open after ${
          formatDuration(ms)
        }: closing them`,
      );
      for (const each of this.open) each.tunnel.close("server shutting down");
    }
    // A tunnel ends when its WebSocket's close handshake does: a client
    // that never answers must not keep serve from exiting.
    if (!await settledWithin(Promise.all([...this.#closed]), CLOSE_WAIT_MS)) {
      log.warn(
        `some tunnel(s) had not answered the close ${
          formatDuration(CLOSE_WAIT_MS)
        } after it; stopping without them`,
      );
    }
    this.sessions.close();
  }

  #isPollRequest(request: Request): boolean {
    return request.headers.has(POLL_HEADER) &&
      new URL(request.url).pathname === this.#options.path;
  }

  // A request of the poll transport: an open is admitted like a v2
  // upgrade; the other kinds are checked for rate limit and token too, and
  // belong to a running session, so they go on while shutting down.
  async #poll(
    request: Request,
    address: string,
    client: string,
  ): Promise<Response> {
    const poll = this.#polls.read(request);
    if (!("kind" in poll)) return this.#refuse(poll, undefined, client);
    const open = poll.kind === "open";
    const admitted = this.#admit(request, address, client, false, open);
    if (admitted instanceof Response) return admitted;
    const answer = await this.#polls.handle(
      request,
      poll,
      admitted.name,
      client,
    );
    return answer instanceof Response
      ? answer
      : this.#refuse(answer, admitted.name, client);
  }

  // An upgrade to our protocol whose Upgrade header a proxy removed.
  #isStrippedUpgrade(request: Request): boolean {
    return request.headers.get("upgrade") === null &&
      new URL(request.url).pathname === this.#options.path &&
      (offers(request, SUBPROTOCOL) || offers(request, SUBPROTOCOL_V2));
  }

  #isTunnelRequest(request: Request): boolean {
    if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return false;
    }
    if (new URL(request.url).pathname !== this.#options.path) return false;
    return offers(request, SUBPROTOCOL) || offers(request, SUBPROTOCOL_V2);
  }

  // A v2 upgrade: the WebSocket carries a session; its streams are
  // checked one by one as they open.
  #upgradeSession<A>(
    request: Request,
    upgrade: SessionUpgrader<A>,
    name: string,
    client: string,
  ): Response | A {
    let upgraded;
    try {
      upgraded = upgrade(request, {
        protocol: SUBPROTOCOL_V2,
        idleTimeoutSeconds: this.#options.heartbeatSeconds,
      });
    } catch (error) {
      return this.#refuse(
        refusal(
          400,
          "bad-request",
          `not a valid upgrade: ${errorMessage(error)}`,
        ),
        name,
        client,
      );
    }
    this.sessions.run(upgraded.transport, name, client);
    return upgraded.answer;
  }

  // A stream a v2 client opened: the same checks and connect as a v1
  // tunnel, answered with OPENED or REFUSE instead of a status.
  async #openStream(
    endpoint: SessionEndpoint,
    stream: SessionStream,
    target: HostPort,
    owner: SessionOwner,
  ): Promise<void> {
    const where = formatHostPort(target);
    const via = `session ${owner.label} stream ${stream.id}`;
    // Bytes waiting now came in the OPEN's own message: the client sent
    // them before OPENED, as it may within the early window.
    const early = stream.readable;
    if (early > 0) {
      log.debug(`${via}: ${early} byte(s) came with the OPEN of ${where}`);
    }
    const refuse = (failure: Refusal) => {
      this.#note(failure, owner.token, `${owner.client} ${via}`, where);
      endpoint.refuse(stream, REFUSE_CODES[failure.word], failure.reason);
    };
    this.metrics.accepted(this.#options.label);
    if (this.#stopping) {
      return refuse(refusal(503, "busy", "the server is shutting down"));
    }
    const max = this.settings.maxTunnels;
    if (max !== undefined && this.active >= max) {
      return refuse(
        refusal(503, "busy", `the server has ${max} tunnels open, its limit`),
      );
    }
    const started = performance.now();
    this.#connecting++;
    let conn: Deno.TcpConn;
    try {
      const address = await this.#allowedAddress(target);
      if (isRefusal(address)) return refuse(address);
      try {
        conn = await dialTcp(address, {
          connectTimeoutMs: this.settings.connectTimeoutMs,
          keepAlive: true,
        });
      } catch (error) {
        return refuse(
          connectFailure(error, target, this.settings.connectTimeoutMs),
        );
      }
    } finally {
      this.#connecting--;
    }
    if (stream.resetReason !== undefined) {
      // The client gave up (or the session expired) while we connected.
      conn.close();
      return;
    }
    endpoint.accept(stream);
    this.metrics.opened(performance.now() - started);
    const counters = newCounters();
    let stop: (() => void) | undefined;
    const done = relay(stream, conn, {
      counters,
      onStart: (each) => stop = each,
    }).then((result) => ({
      bytesUp: result.bytesUp,
      bytesDown: result.bytesDown,
      reason: stream.resetReason !== undefined
        ? `stream reset: ${stream.resetReason}`
        : result.aborted
        ? "server shutting down"
        : result.error
        ? `target reset (${errorMessage(result.error)})`
        : "done",
    }));
    this.#track(
      { counters, done, close: () => stop?.() },
      owner.token,
      owner.client,
      target,
      via,
    );
  }

  #admit(
    request: Request,
    address: string,
    client: string,
    needsTarget: boolean,
    opens = true,
  ): { name: string; target?: HostPort } | Response {
    const source = sourceKey(address);
    const label = this.#options.label;
    if (opens) this.metrics.accepted(label);
    if (this.#limiter.blocked(source)) {
      return this.#refuse(
        refusal(
          429,
          "rate-limited",
          "too many failed authentications from this address; try again later",
        ),
        undefined,
        client,
      );
    }
    const token = bearerToken(request.headers.get("authorization"));
    const name = token === undefined
      ? undefined
      : matchToken(this.tokens, token);
    if (name === undefined) {
      const blocked = this.#limiter.failed(source);
      if (blocked) {
        log.warn(
          `${source}: too many failed authentications; refused for a while`,
        );
      }
      return this.#refuse(
        refusal(
          401,
          "auth",
          token === undefined
            ? "no bearer token: send Authorization: Bearer <token>"
            : "unknown token",
        ),
        undefined,
        client,
      );
    }
    if (!needsTarget) {
      return this.#stopping && opens
        ? this.#refuse(
          refusal(503, "busy", "the server is shutting down"),
          name,
          client,
        )
        : { name };
    }
    const target = parseTarget(request.headers.get(TARGET_HEADER));
    if (target === undefined) {
      return this.#refuse(
        refusal(
          400,
          "bad-request",
          `missing or invalid ${TARGET_HEADER}: write host:port or [v6]:port`,
        ),
        name,
        client,
      );
    }
    if (this.#stopping) {
      return this.#refuse(
        refusal(503, "busy", "the server is shutting down"),
        name,
        client,
        formatHostPort(target),
      );
    }
    const max = this.settings.maxTunnels;
    if (max !== undefined && this.active >= max) {
      return this.#refuse(
        refusal(503, "busy", `the server has ${max} tunnels open, its limit`),
        name,
        client,
        formatHostPort(target),
      );
    }
    return { name, target };
  }

  /**
   * Where to connect for `target`, when an allow rule lets it through: a
   * name allowed by a name rule is dialed as it is; otherwise the address
   * (given, or resolved) must match an address rule, and that address is
   * dialed, so what was checked is what is reached.
   */
  async #allowedAddress(target: HostPort): Promise<HostPort | Refusal> {
    const rules = this.settings.allow;
    const literal = isIPv4(target.host) || isIPv6(target.host);
    if (literal) {
      return matchAddress(rules, target.host, target.port)
        ? target
        : notAllowed(target);
    }
    if (matchName(rules, target.host, target.port)) return target;
    if (!addressRulesCover(rules, target.port)) return notAllowed(target);
    let addresses: string[];
    try {
      addresses = (await withTimeout(
        lookup(target.host, { all: true }),
        this.settings.connectTimeoutMs,
      )).map((each) => each.address);
    } catch (error) {
      return refusal(
        502,
        "unreachable",
        `cannot resolve ${target.host}: ${errorMessage(error)}`,
      );
    }
    const allowed = addresses.find((each) =>
      matchAddress(rules, each, target.port)
    );
    return allowed === undefined
      ? refusal(
        403,
        "not-allowed",
        `${formatHostPort(target)} resolves to ${
          addresses.slice(0, 4).join(", ")
        }, which no allow rule covers`,
      )
      : { host: allowed, port: target.port };
  }

  #refuse(
    failure: Refusal,
    name: string | undefined,
    client: string,
    target?: string,
  ): Response {
    this.#note(failure, name, client, target);
    return new Response(`${failure.reason}\n`, {
      status: failure.status,
      headers: {
        "content-type": "text/plain; charset=utf-8",
        [REFUSAL_HEADER]: failure.word,
      },
    });
  }

  // Counts and logs a refusal.
  #note(
    { status, word, reason }: Refusal,
    name: string | undefined,
    client: string,
    target?: string,
  ): void {
    this.refusals.set(word, (this.refusals.get(word) ?? 0) + 1);
    const failure = FAILURES[word];
    if (failure !== undefined) {
      this.metrics.failed(this.#options.label, failure);
    }
    log.warn(
      `refused ${status} ${word}: client ${client}${
        name === undefined ? "" : ` token ${name}`
      }${target === undefined ? "" : ` target ${target}`}: ${reason}`,
    );
  }

  #track(
    tunnel: WsTunnel,
    token: string,
    client: string,
    target: HostPort,
    via?: string,
  ): void {
    const entry: OpenTunnel = {
      id: this.#nextId++,
      via,
      token,
      client,
      target: formatHostPort(target),
      startedAt: Date.now(),
      tunnel,
    };
    this.open.add(entry);
    const where = `token ${token} client ${client} target ${entry.target}${
      via === undefined ? "" : ` (${via})`
    }`;
    log.info(`tunnel ${entry.id} open: ${where}`);
    const closed = tunnel.done.then((end) => {
      this.open.delete(entry);
      this.metrics.closed(this.#options.label, end.bytesUp, end.bytesDown);
      log.info(
        `tunnel ${entry.id} closed: ${where}, ${formatBytes(end.bytesUp)} up, ${
          formatBytes(end.bytesDown)
        } down, ${formatDuration(Date.now() - entry.startedAt)}: ${end.reason}`,
      );
    });
    this.#closed.add(closed);
    closed.finally(() => this.#closed.delete(closed));
  }
}

/** The REFUSE code of each refusal word, for v2 streams. */
const REFUSE_CODES: Record<RefusalWord, RefuseCode> = {
  "bad-request": "not-allowed",
  auth: "auth",
  certificate: "auth",
  "not-allowed": "not-allowed",
  "rate-limited": "limit",
  busy: "limit",
  refused: "refused",
  unreachable: "unreachable",
  timeout: "timeout",
  // Refusals of a transport's requests, never of a stream's OPEN.
  "no-upgrade": "not-allowed",
  "unknown-poll": "not-allowed",
  "too-large": "not-allowed",
};

/** Whether an upgrade request offers `protocol`. */
function offers(request: Request, protocol: string): boolean {
  const protocols = request.headers.get("sec-websocket-protocol") ?? "";
  return protocols.split(",").some((each) => each.trim() === protocol);
}

/** The refusals that count as failed tunnels in /metrics, by their reason label. */
const FAILURES: Partial<Record<RefusalWord, FailureReason>> = {
  auth: "auth",
  refused: "refused",
  unreachable: "connect",
  timeout: "timeout",
};

/** Most `X-Forwarded-For` entries looked at. */
const MAX_FORWARDED = 16;

/**
 * The client's address behind trusted reverse proxies: walking
 * `X-Forwarded-For` from the right (the entry the nearest proxy added)
 * past trusted proxies, the first other address. A client can write any
 * left part itself, so nothing left of that is believed. Pure.
 *
 * @param peer The address of the connection's other end.
 * @param header `X-Forwarded-For`, or `null`.
 * @param trusted Whether an address is a trusted proxy.
 * @returns The client's address; `peer` unless `peer` is trusted.
 *
 * @example
 * ```ts
 * forwardedClient("127.0.0.1", "203.0.113.9, 10.0.0.2", (a) => a === "127.0.0.1"); // "10.0.0.2"
 * ```
 */
export function forwardedClient(
  peer: string,
  header: string | null,
  trusted: (address: string) => boolean,
): string {
  if (header === null || header.length > 4096 || !trusted(peer)) return peer;
  const entries = header.split(",").slice(-MAX_FORWARDED).reverse();
  let client = peer;
  for (const raw of entries) {
    const address = raw.trim().replace(/^\[(.*)\]$/, "$1");
    if (!isIPv4(address) && !isIPv6(address)) return client;
    client = address;
    if (!trusted(address)) return address;
  }
  return client;
}

/**
 * Parses the target header: `host:port` or `[v6]:port`. Pure.
 *
 * @param value The header's value, or `null`.
 * @returns The target, or `undefined` when absent or malformed.
 */
export function parseTarget(value: string | null): HostPort | undefined {
  if (value === null || value.length > 300) return undefined;
  const split = splitHostPort(value.trim());
  if (split === undefined) return undefined;
  const port = parsePort(split.port);
  const bracketed = split.host.startsWith("[");
  const host = bracketed ? split.host.slice(1, -1) : split.host;
  const valid = bracketed ? isIPv6(host) : isIPv4(host) || isHostName(host);
  return port === undefined || !valid ? undefined : { host, port };
}

/** A refused tunnel: status, refusal word, and the one line both the client and the log get. */
interface Refusal {
  readonly status: number;
  readonly word: RefusalWord;
  readonly reason: string;
}

function refusal(status: number, word: RefusalWord, reason: string): Refusal {
  return { status, word, reason };
}

function isRefusal(value: unknown): value is Refusal {
  return typeof value === "object" && value !== null && "word" in value;
}

function notAllowed(target: HostPort): Refusal {
  return refusal(
    403,
    "not-allowed",
    `${formatHostPort(target)} is not covered by any allow rule`,
  );
}

function connectFailure(
  error: unknown,
  target: HostPort,
  timeoutMs: number,
): Refusal {
  const where = formatHostPort(target);
  if (error instanceof TimeoutError) {
    return refusal(
      504,
      "timeout",
      `connect to ${where} timed out after ${formatDuration(timeoutMs)}`,
    );
  }
  const cause = error instanceof DialError ? error.cause : error;
  if (cause instanceof Deno.errors.ConnectionRefused) {
    return refusal(502, "refused", `${where} refused the connection`);
  }
  return refusal(
    502,
    "unreachable",
    `cannot reach ${where}: ${errorMessage(cause)}`,
  );
}

async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no answer within ${formatDuration(ms)}`)),
          ms,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
