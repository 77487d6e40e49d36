/**
 * The smallest Deno relay: accept, connect, and a read/write loop each way
 * with a 16 KiB buffer; no limits, timers, logs or half-close. The bench
 * runs it beside httptunneling to show what any relay written on Deno's
 * socket API costs per connection and per message.
 *
 *   deno run --allow-net bench/floor.ts LISTEN_PORT TARGET_PORT
 */

const [listenPort, targetPort] = Deno.args.map(Number);

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
  try {
    from.close();
  } catch { /* closed */ }
  try {
    to.close();
  } catch { /* closed */ }
}

for await (
  const client of Deno.listen({ hostname: "127.0.0.1", port: listenPort })
) {
  Deno.connect({ hostname: "127.0.0.1", port: targetPort }).then((target) => {
    client.setNoDelay(true);
    target.setNoDelay(true);
    pump(client, target);
    pump(target, client);
  }, () => client.close());
}
