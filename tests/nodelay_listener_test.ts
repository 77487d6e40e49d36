import assert from "node:assert/strict";
import { setListenerNoDelay } from "../lib/net/nodelay_listener.ts";
import { socketInode } from "../lib/net/proc_net_tcp.ts";
import { makeCertificates } from "./_util/certs.ts";
import { freePort, within } from "./_util/net.ts";

// <netinet/in.h>, <netinet/tcp.h> on Linux.
const IPPROTO_TCP = 6;
const TCP_NODELAY = 1;

/** TCP_NODELAY of each socket of this process connected from `port`. */
function acceptedNoDelay(port: number): number[] {
  const inodes = new Set<number>();
  for (const line of Deno.readTextFileSync("/proc/net/tcp").split("\n")) {
    const fields = line.trim().split(/\s+/);
    // Established (01) with our listening port as the local one.
    if (fields[3] !== "01") continue;
    if (parseInt(fields[1]?.split(":")[1] ?? "", 16) !== port) continue;
    inodes.add(Number(fields[9]));
  }
  const libc = Deno.dlopen("libc.so.6", {
    getsockopt: {
      parameters: ["i32", "i32", "i32", "buffer", "buffer"],
      result: "i32",
    },
  });
  try {
    const values: number[] = [];
    for (const entry of Deno.readDirSync("/proc/self/fd")) {
      let link = "";
      try {
        link = Deno.readLinkSync(`/proc/self/fd/${entry.name}`);
      } catch {
        continue; // the directory's own descriptor, closed by now
      }
      const inode = socketInode(link);
      if (inode === undefined || !inodes.has(inode)) continue;
      const value = new Int32Array(1);
      const length = new Uint32Array([4]);
      libc.symbols.getsockopt(
        Number(entry.name),
        IPPROTO_TCP,
        TCP_NODELAY,
        new Uint8Array(value.buffer),
        new Uint8Array(length.buffer),
      );
      values.push(value[0]);
    }
    return values;
  } finally {
    libc.close();
  }
}

Deno.test({
  name:
    "nodelay listener: a Deno.listenTls socket's accepted connections get TCP_NODELAY",
  ignore: Deno.build.os !== "linux",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "httptunneling-nodelay-" });
    try {
      const { caPem } = await makeCertificates(dir);
      using listener = Deno.listenTls({
        hostname: "127.0.0.1",
        port: 0,
        cert: await Deno.readTextFile(`${dir}/server.pem`),
        key: await Deno.readTextFile(`${dir}/server.key`),
      });
      const port = listener.addr.port;
      assert.deepEqual(acceptedNoDelay(port), []);
      assert.equal(setListenerNoDelay(port), true);
      const [client, accepted] = await within(
        Promise.all([
          Deno.connectTls({ hostname: "127.0.0.1", port, caCerts: [caPem] }),
          listener.accept(),
        ]),
        10_000,
        "the TLS connection",
      );
      try {
        await within(
          Promise.all([client.handshake(), accepted.handshake()]),
          10_000,
          "the handshake",
        );
        assert.deepEqual(acceptedNoDelay(port), [1]);
      } finally {
        client.close();
        accepted.close();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("nodelay listener: a port nothing of ours listens on is left alone", () => {
  assert.equal(setListenerNoDelay(freePort()), false);
});
