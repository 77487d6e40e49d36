/**
 * How a tunnel reaches its destination.
 *
 * @module
 */

import type { HostPort } from "../address.ts";

/** An HTTP proxy that accepts `CONNECT`, with optional credentials. */
export interface HttpProxy extends HostPort {
  /** User name from the proxy URL, percent-decoded. */
  readonly username?: string;
  /** Password from the proxy URL, percent-decoded. Never logged. */
  readonly password?: string;
  /** Send Basic credentials with the first request, before any 407. */
  readonly preemptiveBasic?: boolean;
}

/** The way from this tool to a destination. */
export type Route =
  | { readonly kind: "direct" }
  | { readonly kind: "http"; readonly proxy: HttpProxy };

/**
 * Describes a route for logs and tables, without credentials.
 *
 * @param route The route to describe.
 * @returns `direct` or `via proxy.example:3128` (user name shown, password masked).
 */
export function describeRoute(route: Route): string {
  if (route.kind === "direct") return "direct";
  const { proxy } = route;
  const user = proxy.username === undefined
    ? ""
    : `${encodeURIComponent(proxy.username)}:***@`;
  const host = proxy.host.includes(":") ? `[${proxy.host}]` : proxy.host;
  return `via http://${user}${host}:${proxy.port}`;
}
