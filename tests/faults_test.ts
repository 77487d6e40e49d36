/**
 * Fault injection: a scripted proxy and destination misbehave on the first
 * connection. For each fault the client's connection ends within a bounded
 * time, the log names the cause, and the same listener serves the next
 * connection. Deno's sanitizers check that nothing leaks.
 */
import assert from "node:assert/strict";
import { relay } from "../lib/relay.ts";
import {
  bytes,
  connect,
  echoRoundTrip,
  freePort,
  pause,
  readAll,
  readExactly,
  startEchoServer,
  startServer,
  text,
  within,
  writeAll,
} from "./_util/net.ts";
import { captureLogs, startTool, TEST_OPTIONS } from "./_util/tool.ts";

/** Reads a request head and returns it. */
async function readRequest(conn: Deno.Conn): Promise<string> {
  let request = "";
  const buffer = new Uint8Array(1);
  while (!request.endsWith("\r\n\r\n")) {
    if (await conn.read(buffer) === null) break;
    request += String.fromCharCode(buffer[0]);
  }
  return request;
}

/** A proxy that behaves on every connection but the first. */
function startFaultyProxy(
  fault: (conn: Deno.TcpConn) => Promise<void>,
  echoPort: number,
) {
  return startServer(async (conn, index) => {
    if (index === 0) return await fault(conn);
    await readRequest(conn);
    await writeAll(conn, bytes("HTTP/1.1 200 Connection established\r\n\r\n"));
    await relay(conn, await connect(echoPort));
  });
}

// Closing a socket with unread bytes makes the kernel send a reset.
async function resetAfterUnreadBytes(conn: Deno.TcpConn): Promise<void> {
  await pause(150);
  conn.close();
}

interface ProxyFault {
  readonly name: string;
  readonly proxy: (conn: Deno.TcpConn) => Promise<void>;
  /** What the client does on the faulty connection; by default it sends and waits. */
  readonly client?: (conn: Deno.TcpConn) => Promise<void>;
  readonly options?: string;
  readonly log: RegExp;
}

const PROXY_FAULTS: ProxyFault[] = [
  {
    name: "reset during the handshake",
    proxy: resetAfterUnreadBytes,
    log:
      /failed .*: (.*reset.*|proxy .* closed the connection before answering .*)$/i,
  },
  {
    name: "close before the status line",
    proxy: async (conn) => void await readRequest(conn),
    log:
      /failed .*: proxy 127\.0\.0\.1:\d+ closed the connection before answering CONNECT/,
  },
  {
    name: "garbage instead of a status line",
    proxy: async (conn) => {
      await readRequest(conn);
      await writeAll(conn, bytes("\x16\x03\x01garbage\r\n\r\n"));
    },
    log: /failed .*: proxy did not answer with HTTP: got "\?\?\?garbage"$/,
  },
  {
    name: "HTML junk before the status line",
    proxy: async (conn) => {
      await readRequest(conn);
      await writeAll(
        conn,
        bytes("<html>blocked</html>\r\n\r\nHTTP/1.1 200 OK\r\n\r\n"),
      );
    },
    log:
      /failed .*: proxy did not answer with HTTP: got "<html>blocked<\/html>"$/,
  },
  {
    name: "a header over the 64 KiB cap",
    proxy: async (conn) => {
      await readRequest(conn);
      await writeAll(
        conn,
        bytes(`HTTP/1.1 200 OK\r\nX-Big: ${"a".repeat(70_000)}\r\n\r\n`),
      );
    },
    log: /failed .*: proxy response header exceeds 64 KiB$/,
  },
  {
    name: "a header trickling one byte at a time (slowloris)",
    options: "handshake-timeout=1s",
    proxy: async (conn) => {
      await readRequest(conn);
      for (const byte of bytes("HTTP/1.1 200 OK\r\nX-Slow: yes\r\n\r\n")) {
        await writeAll(conn, Uint8Array.of(byte));
        await pause(200);
      }
    },
    log:
      /failed .*: CONNECT 127\.0\.0\.1:\d+ through proxy 127\.0\.0\.1:\d+ timed out after 1 s$/,
  },
  {
    name: "a 407 loop",
    options: "credentials=creds",
    proxy: async (conn) => {
      while ((await readRequest(conn)) !== "") {
        await writeAll(
          conn,
          bytes(
            'HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="x"\r\nContent-Length: 0\r\n\r\n',
          ),
        );
      }
    },
    log: /failed .*: Proxy 127\.0\.0\.1:\d+ rejected the credentials \(Basic\)/,
  },
  ...[502, 503, 504].map((status): ProxyFault => ({
    name: `${status} with a body`,
    proxy: async (conn) => {
      await readRequest(conn);
      await writeAll(
        conn,
        bytes(
          `HTTP/1.1 ${status} Upstream Trouble\r\nContent-Length: 11\r\n\r\nbad gateway`,
        ),
      );
    },
    log: new RegExp(
      `failed .*: Proxy 127\\.0\\.0\\.1:\\d+ refused CONNECT to 127\\.0\\.0\\.1:\\d+: "HTTP/1\\.1 ${status} Upstream Trouble"$`,
    ),
  })),
  {
    name: "200 then an immediate close",
    proxy: async (conn) => {
      await readRequest(conn);
      await writeAll(conn, bytes("HTTP/1.1 200 OK\r\n\r\n"));
    },
    log: /closed: .*destination closed first/,
  },
  {
    name: "200 then a reset mid-stream",
    proxy: async (conn) => {
      await readRequest(conn);
      await writeAll(conn, bytes("HTTP/1.1 200 OK\r\n\r\n"));
      await resetAfterUnreadBytes(conn);
    },
    // Deno reports a reset on read as the end of the stream.
    log: /closed: 5 B up, 0 B down, .*destination (closed first|failed)/,
  },
  {
    name: "the client disconnecting during the handshake",
    options: "handshake-timeout=1s",
    proxy: async (conn) => {
      await readRequest(conn);
      await pause(1_500);
    },
    client: async (conn) => {
      await pause(100);
      conn.close();
    },
    log: /failed .*: CONNECT .* timed out after 1 s$/,
  },
  {
    name: "the client disconnecting mid-stream",
    proxy: async (conn) => {
      await readRequest(conn);
      await writeAll(conn, bytes("HTTP/1.1 200 OK\r\n\r\n"));
      await readAll(conn);
    },
    client: async (conn) => {
      await writeAll(conn, bytes("partial"));
      await pause(100);
      conn.close();
    },
    log: /closed: 7 B up, 0 B down, .*client closed first/,
  },
  {
    name: "a proxy answering before the request was fully written",
    proxy: async (conn) => {
      await writeAll(conn, bytes("HTTP/1.1 200 OK\r\n\r\n"));
      await readRequest(conn);
      const echo = await readExactly(conn, 5);
      await writeAll(conn, echo);
    },
    client: async (conn) => {
      await writeAll(conn, bytes("early"));
      assert.equal(
        text(await within(readExactly(conn, 5), 5_000, "echo")),
        "early",
      );
      conn.close();
    },
    log: /closed: 5 B up, 5 B down/,
  },
];

for (const fault of PROXY_FAULTS) {
  Deno.test(`fault: ${fault.name}`, async () => {
    await using logs = await captureLogs();
    await using echo = startEchoServer();
    await using proxy = startFaultyProxy(fault.proxy, echo.port);
    const dir = await Deno.makeTempDir();
    await Deno.writeTextFile(`${dir}/creds`, "jane:secret\n");
    const port = freePort();
    const options =
      fault.options?.replace("credentials=creds", `credentials=${dir}/creds`) ??
        "";
    await using _tool = await startToolWithFiles(
      `${port} 127.0.0.1 ${echo.port} 127.0.0.1 ${proxy.port} ${options}\n`,
    );
    const conn = await connect(port);
    if (fault.client) {
      await fault.client(conn);
    } else {
      await writeAll(conn, bytes("hello")).catch(() => {});
      await within(
        readAll(conn).catch(() => new Uint8Array()),
        10_000,
        "client connection ends",
      );
      conn.close();
    }
    await logs.waitFor(fault.log, 10_000);
    // The same listener serves the next connection.
    assert.equal(await echoRoundTrip(port, "next one"), "next one");
    await Deno.remove(dir, { recursive: true });
  });
}

/** startTool with credential files readable, as the real loader does. */
function startToolWithFiles(config: string) {
  return startTool(config, { defaults: TEST_OPTIONS }, {
    env: () => undefined,
    readFile: (path) => Deno.readTextFileSync(path),
  });
}

Deno.test("fault: proxy port closed; other entries keep serving", async () => {
  await using logs = await captureLogs();
  await using echo = startEchoServer();
  const [broken, healthy, closedPort] = [freePort(), freePort(), freePort()];
  await using _tool = await startTool(
    `${broken} 127.0.0.1 ${echo.port} 127.0.0.1 ${closedPort}\n${healthy} 127.0.0.1 ${echo.port}\n`,
  );
  using conn = await connect(broken);
  assert.equal((await within(readAll(conn), 5_000, "closed")).length, 0);
  await logs.waitFor(
    new RegExp(
      `failed .*: Cannot connect to 127\\.0\\.0\\.1:${closedPort}: Connection refused`,
    ),
  );
  assert.equal(await echoRoundTrip(healthy, "still serving"), "still serving");
});

Deno.test("fault: a destination reset mid-stream", async () => {
  await using logs = await captureLogs();
  await using destination = startServer(async (conn, index) => {
    if (index === 0) return await resetAfterUnreadBytes(conn);
    await writeAll(conn, await readExactly(conn, 4));
  });
  const port = freePort();
  await using _tool = await startTool(
    `${port} 127.0.0.1 ${destination.port}\n`,
  );
  const conn = await connect(port);
  await writeAll(conn, bytes("data that is never read"));
  await within(
    readAll(conn).catch(() => new Uint8Array()),
    5_000,
    "client connection ends",
  );
  conn.close();
  await logs.waitFor(
    /closed: 23 B up, 0 B down, .*destination (closed first|failed)/,
  );
  using next = await connect(port);
  await writeAll(next, bytes("next"));
  assert.equal(text(await within(readExactly(next, 4), 5_000, "next")), "next");
});
