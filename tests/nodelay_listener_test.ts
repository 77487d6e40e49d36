import assert from "node:assert/strict";
import { setListenerNoDelay } from "../lib/net/nodelay_listener.ts";
import { makeCertificates } from "./_util/certs.ts";
import { freePort, within } from "./_util/net.ts";

// <sys/socket.h>, <netinet/tcp.h> on Linux.
const SOL_SOCKET = 1;
const SO_ACCEPTCONN = 30;
const IPPROTO_TCP = 6;
const TCP_NODELAY = 1;
const AF_INET = 2;
const AF_INET6 = 10;

/**
 * TCP_NODELAY of each socket of this process bound to `port` that does not
 * listen: the connections the listener on `port` accepted.
 */
function acceptedNoDelay(port: number): number[] {
  const libc = Deno.dlopen("libc.so.6", {
    getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
    getsockopt: {
      parameters: ["i32", "i32", "i32", "buffer", "buffer"],
      result: "i32",
    },
  });
  const option = (fd: number, level: number, name: number) => {
    const value = new Int32Array(1);
    const length = new Uint32Array([4]);
    libc.symbols.getsockopt(
      fd,
      level,
      name,
      new Uint8Array(value.buffer),
      new Uint8Array(length.buffer),
    );
    return value[0];
  };
  try {
    const values: number[] = [];
    const address = new Uint8Array(128);
    const length = new Uint32Array(1);
    // As many descriptors as the library looks at: a test process holds many.
    for (let fd = 0; fd < 65_536; fd++) {
      length[0] = address.length;
      const named = libc.symbols.getsockname(
        fd,
        address,
        new Uint8Array(length.buffer),
      );
      // sa_family in the machine's byte order: AF_INET or AF_INET6 only
      // (other families do not hold a port at bytes 2 and 3).
      const family = new Uint16Array(address.buffer, 0, 1)[0];
      if (named !== 0 || (family !== AF_INET && family !== AF_INET6)) continue;
      if (((address[2] << 8) | address[3]) !== port) continue;
      if (option(fd, SOL_SOCKET, SO_ACCEPTCONN) === 1) continue;
      values.push(option(fd, IPPROTO_TCP, TCP_NODELAY));
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
