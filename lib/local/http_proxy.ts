/**
 * The greeter of a `proxy` entry: a local HTTP proxy. Each request on a
 * client's connection is read whole-head within a time limit and checked
 * against the entry's rules; `CONNECT host:port` becomes a tunnel over the
 * entry's route, plain `http://` requests are answered one after another
 * by {@link forwardRequest} on the same connection.
 *
 * @module
 */

import { errorMessage, routeFailure } from "../errors.ts";
import { formatHostPort } from "../net/address.ts";
import { BufferedDuplex } from "../net/buffered.ts";
import { writeAll } from "../net/duplex.ts";
import { headerValue } from "../proxy/http_head.ts";
import type { Greeter, Greeting, GreetSession } from "../tunnel.ts";
import { forwardRequest } from "./forward_http.ts";
import {
  errorResponse,
  HttpMessageError,
  parseConnectTarget,
  readRequestHeadWithin,
  type RequestHead,
} from "./http1.ts";
import {
  basicAuthorized,
  clientAllowed,
  ClientRefusedError,
  routeFor,
} from "./rules.ts";
import type { UpstreamPool } from "./upstream_pool.ts";

/** How long a kept-alive client may wait before its next request. */
const CLIENT_KEEPALIVE_MS = 120_000;

const CONNECTED = new TextEncoder().encode(
  "HTTP/1.1 200 Connection established\r\n\r\n",
);

/**
 * The HTTP proxy greeter.
 *
 * @param upstreams Kept-alive upstream connections for plain requests.
 * @returns A greeter for `proxy` entries.
 */
export function httpProxyGreeter(upstreams: UpstreamPool): Greeter {
  return { greet: (conn, session) => serve(conn, session, upstreams) };
}

async function serve(
  conn: Deno.TcpConn,
  session: GreetSession,
  upstreams: UpstreamPool,
): Promise<Greeting | undefined> {
  const { entry } = session;
  const client = new BufferedDuplex(conn, {
    onEnd: () =>
      new HttpMessageError(
        400,
        "the client closed its connection in the middle of a request",
      ),
  });
  const allowed = clientAllowed(entry, session.clientAddr.hostname);
  for (let served = 0;; served++) {
    const head = await nextRequest(client, session, served);
    if (head === undefined) return undefined;
    if (!allowed) {
      await writeAll(client, errorResponse(403, "not allowed")).catch(() => {});
      throw new ClientRefusedError(
        session.clientLabel,
        formatHostPort(entry.source),
      );
    }
    if (!basicAuthorized(entry, headerValue(head, "proxy-authorization"))) {
      await writeAll(
        client,
        errorResponse(
          407,
          "this proxy wants the user name and password of its client-auth=",
          [["Proxy-Authenticate", 'Basic realm="httptunneling"']],
        ),
      ).catch(() => {});
      return undefined;
    }
    if (head.method === "CONNECT") {
      let destination;
      try {
        destination = parseConnectTarget(head.target);
      } catch (error) {
        await refuse(client, error);
        throw error;
      }
      return {
        client,
        destination,
        route: routeFor(entry, destination),
        established: () => writeAll(client, CONNECTED),
        refused: (error) =>
          writeAll(
            client,
            errorResponse(connectStatus(error), errorMessage(error)),
          ),
      };
    }
    if (!(await forwardRequest(client, head, session, upstreams))) {
      return undefined;
    }
  }
}

// Reads the next request head: the first within the handshake limit, the
// next ones within the keep-alive limit. `undefined` when the client is
// done (closed, or silent between requests).
async function nextRequest(
  client: BufferedDuplex,
  session: GreetSession,
  served: number,
): Promise<RequestHead | undefined> {
  const limit = served === 0 ? session.options.handshakeTimeoutMs : Math.min(
    session.options.idleTimeoutMs ?? CLIENT_KEEPALIVE_MS,
    CLIENT_KEEPALIVE_MS,
  );
  try {
    return await readRequestHeadWithin(client, {
      timeoutMs: limit,
      what: `a request from ${session.clientLabel}`,
      signal: session.signal,
    });
  } catch (error) {
    if (served > 0 && routeFailure(error)?.kind === "timeout") return undefined;
    throw error;
  }
}

// Answers a request this tool cannot take with its status and reason.
async function refuse(client: BufferedDuplex, error: unknown): Promise<void> {
  if (!(error instanceof HttpMessageError)) return;
  await writeAll(client, errorResponse(error.status, error.message))
    .catch(() => {});
}

/**
 * The status a CONNECT client gets when its tunnel cannot open: the
 * upstream's own refusal (403 stays 403), 504 for a time limit, 502 for
 * everything else the upstream or the network did.
 *
 * @param error What opening the route threw.
 * @returns The HTTP status.
 */
export function connectStatus(error: unknown): number {
  const failure = routeFailure(error);
  if (failure?.kind === "timeout") return 504;
  if (failure?.kind === "ws-refused") {
    if (failure.refusal === "not-allowed") return 403;
    if (failure.refusal === "timeout") return 504;
  }
  if (
    failure?.kind === "refused" && failure.status >= 400 &&
    failure.status < 500 && failure.status !== 407
  ) {
    return failure.status;
  }
  return 502;
}
