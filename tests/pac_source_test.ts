/**
 * Where PAC scripts come from: fetching a PAC URL straight from its server
 * (bounded in size and time, chunked or not), reading a file, keeping the
 * last good script across a failed refresh, and pac=auto's discovery.
 */
import assert from "node:assert/strict";
import {
  fetchPac,
  PacSource,
  PacSourceError,
  readPacFile,
} from "../lib/route/pac/source.ts";
import { tempCertificates } from "./_util/local.ts";
import { freePort, startServer, writeAll } from "./_util/net.ts";

const PAC = 'function FindProxyForURL() { return "DIRECT"; }';

/** An HTTP server answering every request with `answer()`, raw. */
function rawServer(answer: () => string | Promise<string>) {
  return startServer(async (conn) => {
    const buffer = new Uint8Array(4096);
    let head = "";
    while (!head.includes("\r\n\r\n")) {
      const n = await conn.read(buffer);
      if (n === null) return;
      head += new TextDecoder().decode(buffer.subarray(0, n));
    }
    await writeAll(conn, new TextEncoder().encode(await answer()));
  });
}

Deno.test("fetchPac: a length, a chunked and a close-delimited body", async () => {
  for (
    const answer of [
      `HTTP/1.1 200 OK\r\nContent-Length: ${PAC.length}\r\n\r\n${PAC}`,
      `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n${
        PAC.slice(0, 16)
      }\r\n${(PAC.length - 16).toString(16)}\r\n${PAC.slice(16)}\r\n0\r\n\r\n`,
      `HTTP/1.0 200 OK\r\n\r\n${PAC}`,
    ]
  ) {
    await using server = rawServer(() => answer);
    assert.equal(
      await fetchPac(`http://127.0.0.1:${server.port}/proxy.pac`),
      PAC,
    );
  }
});

Deno.test("fetchPac: a status other than 200, a body over the cap, and a silent server are errors", async () => {
  await using missing = rawServer(() =>
    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
  );
  await assert.rejects(
    fetchPac(`http://127.0.0.1:${missing.port}/wpad.dat`),
    (error: Error) =>
      error instanceof PacSourceError &&
      error.message ===
        `cannot load PAC http://127.0.0.1:${missing.port}/wpad.dat: the server answered HTTP/1.1 404 Not Found`,
  );
  await using huge = rawServer(() =>
    `HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n${"x".repeat(2000)}`
  );
  await assert.rejects(
    fetchPac(`http://127.0.0.1:${huge.port}/`, { maxBytes: 1000 }),
    /the script is larger than 1000 bytes, the most read/,
  );
  await using silent = startServer(async (conn) => {
    await conn.read(new Uint8Array(4096));
    await new Promise((resolve) => setTimeout(resolve, 2_000));
  });
  await assert.rejects(
    fetchPac(`http://127.0.0.1:${silent.port}/`, { timeoutMs: 300 }),
    /no complete answer within 300 ms/,
  );
  await assert.rejects(
    fetchPac("ftp://example/p.pac"),
    /only http:\/\/ and https:\/\//,
  );
});

Deno.test("readPacFile: a file over 1 MiB and a directory are refused", async () => {
  const dir = await Deno.makeTempDir({ prefix: "httptunneling-pac-" });
  try {
    await Deno.writeTextFile(`${dir}/big.pac`, "x".repeat(1024 * 1024 + 1));
    await assert.rejects(
      readPacFile(`${dir}/big.pac`),
      /larger than 1048576 bytes/,
    );
    await assert.rejects(readPacFile(dir), /not a regular file/);
    await Deno.writeTextFile(`${dir}/ok.pac`, PAC);
    assert.equal(await readPacFile(`${dir}/ok.pac`), PAC);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("PacSource: a failed refresh keeps the last good script and says so", async () => {
  let answer = `HTTP/1.1 200 OK\r\nContent-Length: ${PAC.length}\r\n\r\n${PAC}`;
  await using server = rawServer(() => answer);
  const logged: string[] = [];
  const changed: string[] = [];
  const source = new PacSource(`http://127.0.0.1:${server.port}/p.pac`, {
    refreshMs: 3_600_000,
    log: (_level, message) => logged.push(message),
    onScript: (script) => {
      changed.push(script.text);
    },
  });
  try {
    assert.equal((await source.script()).text, PAC);
    answer = "HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n";
    await source.refresh();
    assert.equal((await source.script()).text, PAC);
    assert.match(
      logged.at(-1)!,
      /the server answered HTTP\/1\.1 503 Busy; keeping the last good script$/,
    );
    const next = 'function FindProxyForURL() { return "PROXY p:1"; }';
    answer = `HTTP/1.1 200 OK\r\nContent-Length: ${next.length}\r\n\r\n${next}`;
    await source.refresh();
    assert.deepEqual(changed, [next]);
    assert.equal((await source.script()).text, next);
  } finally {
    await source.close();
  }
});

Deno.test("PacSource: a PAC that never loaded is not fetched again for a while, so connections do not each wait; a refresh (SIGHUP) lets the next try at once", async () => {
  let fetches = 0;
  let answer = "HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n";
  await using server = rawServer(() => {
    fetches++;
    return answer;
  });
  const source = new PacSource(`http://127.0.0.1:${server.port}/p.pac`);
  try {
    const first = await source.script().catch((error) => error);
    assert.ok(first instanceof PacSourceError);
    assert.match(first.message, /503 Busy/);
    for (let i = 0; i < 5; i++) {
      assert.equal(await source.script().catch((error) => error), first);
    }
    assert.equal(fetches, 1);
    answer = `HTTP/1.1 200 OK\r\nContent-Length: ${PAC.length}\r\n\r\n${PAC}`;
    await source.refresh();
    assert.equal((await source.script()).text, PAC);
    assert.equal(fetches, 2);
  } finally {
    await source.close();
  }
});

Deno.test("PacSource: one fetch at a time; refreshes asked for meanwhile make one more", async () => {
  let fetches = 0;
  let text = PAC;
  // Each answer comes after a while, so that refreshes overlap.
  await using server = rawServer(async () => {
    fetches++;
    await new Promise((resolve) => setTimeout(resolve, 200));
    return `HTTP/1.1 200 OK\r\nContent-Length: ${text.length}\r\n\r\n${text}`;
  });
  const changed: string[] = [];
  const source = new PacSource(`http://127.0.0.1:${server.port}/p.pac`, {
    refreshMs: 3_600_000,
    onScript: (script) => {
      changed.push(script.text);
    },
  });
  try {
    await source.script();
    assert.equal(fetches, 1);
    text = 'function FindProxyForURL() { return "PROXY p:1"; }';
    await Promise.all(Array.from({ length: 10 }, () => source.refresh()));
    assert.equal(fetches, 3);
    assert.deepEqual(changed, [text]);
  } finally {
    await source.close();
  }
});

Deno.test("PacSource auto: tries PAC_URL, then AUTO_PROXY_URL, logging each attempt; with nothing to try, says why", async () => {
  await using server = rawServer(() =>
    `HTTP/1.1 200 OK\r\nContent-Length: ${PAC.length}\r\n\r\n${PAC}`
  );
  const logged: string[] = [];
  const url = `http://127.0.0.1:${server.port}/wpad.dat`;
  const dead = `http://127.0.0.1:${freePort()}/wpad.dat`;
  const found = new PacSource("auto", {
    log: (_level, message) => logged.push(message),
    discovery: () => ({ env: { PAC_URL: dead, AUTO_PROXY_URL: url } }),
  });
  try {
    assert.deepEqual(await found.script(), { text: PAC, name: url });
    assert.equal(logged.length, 4);
    assert.equal(logged[0], `PAC discovery: trying ${dead}`);
    assert.match(
      logged[1],
      /^PAC discovery: cannot load PAC http:\/\/127\.0\.0\.1:\d+\/wpad\.dat: Cannot connect/,
    );
    assert.deepEqual(logged.slice(2), [
      `PAC discovery: trying ${url}`,
      `PAC discovery: using ${url}`,
    ]);
  } finally {
    await found.close();
  }
  const none = new PacSource("auto", { discovery: () => ({ env: {} }) });
  try {
    await assert.rejects(
      none.script(),
      /no PAC_URL or AUTO_PROXY_URL is set and this host has no DNS domain for WPAD \(DHCP WPAD is not tried\)/,
    );
  } finally {
    await none.close();
  }
});

Deno.test("fetchPac over https: trusted with ca-file's CA, refused without", async () => {
  await using certs = await tempCertificates();
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    cert: await Deno.readTextFile(`${certs.dir}/server.pem`),
    key: await Deno.readTextFile(`${certs.dir}/server.key`),
    onListen: () => {},
  }, () => new Response(PAC));
  try {
    const url = `https://127.0.0.1:${server.addr.port}/proxy.pac`;
    assert.equal(await fetchPac(url, { caCerts: [certs.caPem] }), PAC);
    await assert.rejects(fetchPac(url), /UnknownIssuer|certificate/i);
  } finally {
    await server.shutdown();
  }
});
