/**
 * One plain-language sentence per way a route can fail, saying what is
 * wrong and what to try. Pure: error in, sentence out.
 *
 * @module
 */

import { errorMessage, KerberosError, routeFailure } from "../errors.ts";
import { formatHostPort, type HostPort } from "../net/address.ts";
import type { ChainStep } from "../route/chain.ts";

/** Where in a route the failure happened. */
export interface FailurePlace {
  /** `host:port` of the proxy that was being reached or spoken to, if any. */
  readonly proxy?: string;
  /** `host:port` the step was trying to reach. */
  readonly target: string;
  /** The step: reaching a host, TLS, or asking a proxy. */
  readonly step: "resolve" | "connect" | "tls" | "ask";
}

/**
 * Where a route failed, from the last step a chain walk started (as a
 * chain hook sees them); for a direct route, which has no steps,
 * the connect to the destination.
 *
 * @param step The last step started, if any.
 * @param destination Where the route leads.
 * @returns The place, for {@link diagnose}.
 */
export function failurePlace(
  step: ChainStep | undefined,
  destination: HostPort,
): FailurePlace {
  if (step === undefined) {
    return { target: formatHostPort(destination), step: "connect" };
  }
  return {
    proxy: step.proxy && formatHostPort(step.proxy),
    target: formatHostPort(step.target),
    step: step.kind === "handshake" ? "tls" : step.kind,
  };
}

/**
 * Explains a failed route step.
 *
 * @param error What the step threw.
 * @param place Which step, which proxy, which target.
 * @returns One sentence: what is wrong, then what to do.
 */
export function diagnose(error: Error, place: FailurePlace): string {
  const { proxy, target } = place;
  const port = target.slice(target.lastIndexOf(":") + 1);
  const who = proxy ? `proxy ${proxy}` : target;
  // The host being reached: the proxy itself, or a destination.
  const reached = proxy && proxy === target ? `proxy ${proxy}` : target;
  // A connect that failed on the name, not the address.
  const unresolved = routeFailure(error)?.kind === "dial" &&
    /failed to lookup address|not known|no address associated/i.test(
      error.message,
    );
  if (place.step === "resolve" || unresolved) {
    return `the name in ${target} does not resolve here: check its spelling and this machine's DNS, or write the IP address`;
  }
  const failure = routeFailure(error);
  switch (failure?.kind) {
    case "auth": {
      const kerberos = failure.cause instanceof KerberosError
        ? failure.cause
        : undefined;
      switch (failure.failure) {
        case "credentials-needed":
          return kerberos
            ? `${who} requires authentication, and Negotiate could not be used: ${kerberos.message}; or, as the proxy offers ${failure.detail}, add user:password to the proxy URL, e.g. http://user:password@${proxy}`
            : `${who} requires authentication, and no credentials are configured: the proxy offers ${failure.detail}; add user:password to the proxy URL, e.g. http://user:password@${proxy} (or credentials=FILE)`;
        case "negotiate-failed":
          return `${who} requires Kerberos (${failure.detail}): ${
            kerberos?.message ?? failure.message
          }`;
        case "credentials-rejected":
          if (kerberos) return `${who}: ${kerberos.message}`;
          return `${who} rejected the credentials (${failure.detail}): check the user name and password; NTLM wants DOMAIN\\user, written DOMAIN%5Cuser in a URL`;
        case "unsupported-scheme":
          return `${who} offers only authentication this tool does not support (${failure.detail}): ask for NTLM, Digest or Basic to be enabled for you`;
        default:
          return `${who} broke off the authentication handshake: ${failure.message}`;
      }
    }
    case "refused": {
      const squid = failure.proxyError?.meaning
        ? failure.proxyError
        : undefined;
      const answer = failure.statusLine.replace(/^HTTP\/\d\.\d\s+/, "");
      // The proxy's own detail, when it gave one, says more than its
      // status line.
      if (squid && failure.status >= 500) {
        return `${who} could not reach ${target} (${answer}): ${squid.meaning}; ${squid.advice}`;
      }
      const status = squid ? `${answer}; ${squid.meaning}` : answer;
      if (failure.status === 403 || failure.status === 405) {
        return port === "443"
          ? `${who} refused CONNECT to ${target} (${status}): the proxy does not allow this destination; ask its administrators`
          : `${who} refused CONNECT to port ${port} (${status}): the proxy only allows some ports, ask for ${port} or try port 443 on the destination`;
      }
      if (failure.status >= 500) {
        return `${who} could not reach ${target} (${status}): the destination may be down or firewalled from the proxy, or its name may not resolve there`;
      }
      return `${who} refused CONNECT to ${target} (${status})`;
    }
    case "socks":
    case "ws-refused":
      return failure.message;
    case "tls":
      if (failure.untrusted && failure.peer === "tunnel server") {
        return `the TLS certificate of ${who} is not trusted (${
          errorMessage(failure.cause)
        })${failure.hint}`;
      }
      return failure.untrusted
        ? `the TLS certificate of ${who} is not trusted (${
          errorMessage(failure.cause)
        }): if the proxy uses a private CA, name its certificate with ca-file=FILE or --ca-file`
        : `${failure.message}: is ${proxy} really an https:// proxy? try http://`;
    case "protocol":
      return `${who} does not speak the expected protocol (${failure.message}): check the scheme, e.g. socks5:// for a SOCKS server, https:// for a TLS-only proxy`;
    case "timeout":
      return place.step === "connect"
        ? `${reached} did not accept the connection in time (${failure.message}): a firewall may drop the traffic, or the address or port is wrong`
        : `${who} accepted the connection but did not answer in time (${failure.message}): check that it is a proxy of the scheme you wrote`;
    case "dial":
      return /refused/i.test(failure.message)
        ? `nothing accepts connections at ${reached} (connection refused): check the host and port`
        : `cannot connect to ${reached} (${failure.message}): check the address and that this machine may reach it`;
  }
  return `${who}: ${error.message}`;
}
