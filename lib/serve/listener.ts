/**
 * The far end's HTTP listener: `Deno.serve` (HTTP/1.1, and HTTP/2 by ALPN
 * with TLS), plain or with a certificate and key read from files. When
 * those files change the listener is replaced: the new server binds the
 * same port beside the old one (SO_REUSEPORT) before the old one stops
 * accepting, so no connection attempt finds the port closed, and open
 * tunnels stay on the old server until they end.
 *
 * @module
 */

import { errorMessage } from "../errors.ts";
import { formatHostPort, type HostPort } from "../net/address.ts";
import { logger } from "../observe/log.ts";
import { watchConfig } from "../config/watch.ts";

const log = logger("serve");

/** Quiet time after the certificate or key changed before both are read. */
const RELOAD_SETTLE_MS = 300;

/** The certificate and key files of a TLS listener. */
export interface TlsFiles {
  /** PEM certificate chain. */
  readonly certFile: string;
  /** PEM private key. */
  readonly keyFile: string;
}

/** A listener that may be replaced under its users. */
export interface FarListener {
  /** Where it listens. */
  readonly addr: Deno.NetAddr;
  /** Stops accepting; open connections go on. Resolves once all ended. */
  shutdown(): Promise<void>;
}

/**
 * Starts the listener.
 *
 * @param address Where to listen.
 * @param tls The certificate and key files, or none for plain HTTP.
 * @param handler Answers each request.
 * @returns The listener.
 * @throws when the address cannot be bound or the certificate cannot be used.
 */
export function startFarListener(
  address: HostPort,
  tls: TlsFiles | undefined,
  handler: Deno.ServeHandler<Deno.NetAddr>,
): FarListener {
  const serve = (port: number) => {
    const base = {
      hostname: address.host,
      port,
      reusePort: tls !== undefined,
      onListen: () => {},
      onError: (error: unknown) => {
        log.error(`request failed: ${errorMessage(error)}`);
        return new Response("500 Internal Server Error\n", { status: 500 });
      },
    };
    return tls === undefined ? Deno.serve(base, handler) : Deno.serve({
      ...base,
      cert: Deno.readTextFileSync(tls.certFile),
      key: Deno.readTextFileSync(tls.keyFile),
    }, handler);
  };
  let current = serve(address.port);
  const addr = current.addr;
  const retired = new Set<Promise<void>>();
  const retire = (server: Deno.HttpServer<Deno.NetAddr>) => {
    const finished = server.shutdown().catch(() => {});
    retired.add(finished);
    finished.finally(() => retired.delete(finished));
  };
  const reload = () => {
    let next: Deno.HttpServer<Deno.NetAddr>;
    try {
      next = serve(addr.port);
    } catch (error) {
      log.error(
        `${tls!.certFile} or ${tls!.keyFile} changed but they cannot be used (${
          errorMessage(error)
        }); still serving the previous certificate`,
      );
      return;
    }
    retire(current);
    current = next;
    log.info(
      `${tls!.certFile} changed: TLS on ${
        formatHostPort({ host: addr.hostname, port: addr.port })
      } uses the new certificate for new connections`,
    );
  };
  // A renewal writes the certificate and the key one after the other: one
  // reload after both, not one with a new certificate and the old key.
  let timer: ReturnType<typeof setTimeout> | undefined;
  const changed = () => {
    clearTimeout(timer);
    timer = setTimeout(reload, RELOAD_SETTLE_MS);
  };
  const watches = tls === undefined
    ? []
    : [tls.certFile, tls.keyFile].map((file) => watchConfig(file, changed));
  return {
    addr,
    async shutdown() {
      clearTimeout(timer);
      await Promise.all(watches.map((watch) => watch.close()));
      retire(current);
      await Promise.all([...retired]);
    },
  };
}
