/**
 * The smallest Deno relays, which the bench runs beside httptunneling to
 * show what any relay on Deno's socket API costs per connection and per
 * message: accept, connect, and either a read/write loop each way with a
 * 16 KiB buffer (`loops`), or httptunneling's own relay (`relay`: adaptive
 * buffers and half-close) without anything else of the tool — no routes,
 * time limits, keepalive, limits, metrics or logs.
 *
 *   deno run --allow-net bench/floor.ts LISTEN_PORT TARGET_PORT loops|relay
 */

import { closeQuietly } from "../lib/net/duplex.ts";
import { relay } from "../lib/relay.ts";

const [listenPort, targetPort] = Deno.args.map(Number);
const mode = Deno.args[2];

async function pump(from: Deno.Conn, to: Deno.Conn) {
  const buffer = new Uint8Array(16384);
  try {
    while (true) {
      const n = await from.read(buffer);
      if (n === null) break;
      for (let off = 0; off < n;) {
        off += await to.write(buffer.subarray(off, n));
      }
    }
  } catch { /* either side gone */ }
  closeQuietly(from);
  closeQuietly(to);
}

for await (
  const client of Deno.listen({ hostname: "127.0.0.1", port: listenPort })
) {
  Deno.connect({ hostname: "127.0.0.1", port: targetPort }).then((target) => {
    client.setNoDelay(true);
    target.setNoDelay(true);
    if (mode === "relay") {
      relay(client, target);
    } else {
      pump(client, target);
      pump(target, client);
    }
  }, () => client.close());
}
