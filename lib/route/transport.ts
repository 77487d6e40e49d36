/**
 * Which dialer and connector each proxy scheme uses (the pairing
 * go-gost/x calls a transport). A new scheme is one row here plus its
 * dialer or connector file; the chain walk does not change.
 *
 * @module
 */

import type { Dialer } from "../net/dialer.ts";
import { tcpDialer } from "../net/tcp.ts";
import { tlsDialer } from "../net/tls.ts";
import type { Connector } from "../proxy/connector.ts";
import { httpConnector } from "../proxy/http_connect.ts";
import { socks5Connector } from "../proxy/socks5.ts";
import { wsConnector } from "../proxy/ws_connect.ts";
import { wssDialer } from "../ws/pinned_tls.ts";
import type { ProxyScheme } from "./types.ts";

/** How a hop of one scheme is reached and spoken to. */
export interface Transport {
  /** Opens the stream to the hop, or readies one that reaches it. */
  readonly dialer: Dialer;
  /** Asks the hop for the next address. */
  readonly connector: Connector;
  /** The exchange's name for logs and `probe`, e.g. `CONNECT`. */
  readonly verb: string;
}

const TRANSPORTS: Readonly<Record<ProxyScheme, Transport>> = {
  http: { dialer: tcpDialer, connector: httpConnector, verb: "CONNECT" },
  https: { dialer: tlsDialer, connector: httpConnector, verb: "CONNECT" },
  socks5: {
    dialer: tcpDialer,
    connector: socks5Connector,
    verb: "SOCKS5 CONNECT",
  },
  socks5h: {
    dialer: tcpDialer,
    connector: socks5Connector,
    verb: "SOCKS5 CONNECT",
  },
  ws: { dialer: tcpDialer, connector: wsConnector, verb: "WebSocket upgrade" },
  wss: { dialer: wssDialer, connector: wsConnector, verb: "WebSocket upgrade" },
};

/**
 * The transport for a proxy scheme.
 *
 * @param scheme The hop's scheme.
 * @returns Its dialer and connector.
 */
export function transportFor(scheme: ProxyScheme): Transport {
  return TRANSPORTS[scheme];
}
