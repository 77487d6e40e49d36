/**
 * The greeter of a `socks` entry: the SOCKS handshake names the
 * destination, the entry's rules pick its route, and the reply tells the
 * client how opening it went.
 *
 * @module
 */

import { BufferedDuplex } from "../net/buffered.ts";
import { formatHostPort } from "../net/address.ts";
import { writeAll } from "../net/duplex.ts";
import type { Greeter } from "../tunnel.ts";
import { clientAllowed, ClientRefusedError, routeFor } from "./rules.ts";
import {
  acceptSocks,
  socksFailure,
  socksRefusal,
  socksSuccess,
} from "./socks_server.ts";

/** SOCKS5 and SOCKS4/4a, CONNECT only. */
export const socksGreeter: Greeter = {
  async greet(conn, session) {
    const { entry, options } = session;
    // Replies are short: small reads keep a setup's garbage small.
    const client = new BufferedDuplex(conn, { chunkBytes: 512 });
    const allowed = clientAllowed(entry, session.clientAddr.hostname);
    const request = await acceptSocks(client, {
      clientLabel: session.clientLabel,
      // A refused client is told so after its request, by the rule reply.
      credentials: allowed ? entry.clientCredentials : undefined,
      timeoutMs: options.handshakeTimeoutMs,
      signal: session.signal,
    });
    if (!allowed) {
      await writeAll(client, socksRefusal(request)).catch(() => {});
      throw new ClientRefusedError(
        session.clientLabel,
        formatHostPort(entry.source),
      );
    }
    return {
      client,
      destination: request.target,
      route: routeFor(entry, request.target),
      established: () => writeAll(client, socksSuccess(request)),
      refused: (error) => writeAll(client, socksFailure(request, error)),
    };
  },
};
