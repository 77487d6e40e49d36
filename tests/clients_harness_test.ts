/**
 * Proves the client and origin helpers of tests/_util against real
 * proxies, before the tool's own local proxy and SOCKS5 server are tested
 * with them: curl, git and Chromium through squid (plain requests and
 * CONNECT), curl and git through cntlm in front of squid requiring NTLM
 * (the reference to compare the tool with), netcat through dante.
 *
 * @module
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { makeCertificates } from "./_util/certs.ts";
import {
  chromiumFetch,
  curl,
  gitClone,
  netcatThroughSocks,
} from "./_util/clients.ts";
import {
  HELLO_TEXT,
  originDataSha256,
  PAGE_TITLE,
  SHA256_HEADER,
  startGitHttpsServer,
  startHttpOrigin,
  startHttpsOrigin,
} from "./_util/origins.ts";
import { startEchoServer } from "./_util/net.ts";
import {
  missing,
  missingOnPath,
  SQUID_LOOPBACK_ONLY,
  startCntlm,
  startDante,
  startSquid,
  startSquidWithBasic,
  startSquidWithNtlm,
} from "./_util/proxies.ts";
import { pseudoRandomChunks } from "./_util/data.ts";

const noSquid = missing("squid");
const noCurl = missingOnPath("curl");
const noGit = missingOnPath("git");
const noChromium = missingOnPath("chromium");
const noCntlm = missingOnPath("cntlm");
const noNetcat = missingOnPath("nc");
const noDante = missing("danted");
const noHtpasswd = missingOnPath("htpasswd");

/** A directory with a test CA and certificate, removed on disposal. */
async function certificates() {
  const dir = await Deno.makeTempDir({ prefix: "httptunneling-certs-" });
  const certs = await makeCertificates(dir);
  return {
    ...certs,
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

/** squid's access.log lines, without waitPort's empty connections. */
async function accessLog(dir: string): Promise<string[]> {
  const log = await Deno.readTextFile(`${dir}/access.log`);
  return log.split("\n").filter((line) =>
    line.trim() && !line.includes("error:transaction-end-before-headers")
  );
}

Deno.test({
  name:
    "curl through squid gets every route of the HTTP origin whole; the origin sees Via and no Proxy-Authorization",
  ignore: noSquid || noCurl || noHtpasswd,
  async fn() {
    await using origin = startHttpOrigin();
    await using squid = await startSquidWithBasic("ann", "Pa55-word");
    const proxy = ["-x", `http://ann:Pa55-word@127.0.0.1:${squid.port}`];

    const hello = await curl([...proxy, `${origin.url}/hello`]);
    assert.equal(hello.code, 0, hello.stderr);
    assert.equal(hello.httpCode, 200);
    assert.equal(hello.numConnects, 1);
    assert.equal(hello.stdout, HELLO_TEXT);
    const [seen] = origin.requests;
    assert.equal(seen.method, "GET");
    assert.equal(seen.path, "/hello");
    assert.match(seen.headers.get("via") ?? "", /squid/);
    assert.equal(seen.headers.get("proxy-authorization"), null);

    const chunked = await curl([
      ...proxy,
      `${origin.url}/chunked?bytes=300001`,
    ]);
    assert.equal(chunked.httpCode, 200);
    assert.deepEqual(chunked.transfers[0].headers["transfer-encoding"], [
      "chunked",
    ]);
    assert.equal(chunked.output.length, 300_001);
    assert.equal(sha256(chunked.output), originDataSha256(300_001));

    const big = await curl([...proxy, `${origin.url}/big?bytes=2000000`]);
    assert.equal(big.httpCode, 200);
    assert.deepEqual(big.transfers[0].headers["content-length"], ["2000000"]);
    assert.equal(sha256(big.output), originDataSha256(2_000_000));
    assert.deepEqual(big.transfers[0].headers[SHA256_HEADER], [
      originDataSha256(2_000_000),
    ]);

    await using upload = await tempFile(
      pseudoRandomChunks(9, 200_000, 200_000).next().value!,
    );
    const echo = await curl([
      ...proxy,
      "--data-binary",
      `@${upload.path}`,
      `${origin.url}/echo`,
    ]);
    assert.equal(echo.httpCode, 200);
    assert.equal(sha256(echo.output), upload.sha256);
    assert.deepEqual(echo.transfers[0].headers[SHA256_HEADER], [
      upload.sha256,
    ]);
    assert.deepEqual(
      origin.requests.map((each) => `${each.method} ${each.path}`),
      ["GET /hello", "GET /chunked", "GET /big", "POST /echo"],
    );
  },
});

Deno.test({
  name:
    "curl through squid's CONNECT reaches the HTTPS origin on a high port and reuses the tunnel",
  ignore: noSquid || noCurl,
  async fn() {
    await using certs = await certificates();
    await using origin = await startHttpsOrigin(certs);
    await using squid = await startSquid(SQUID_LOOPBACK_ONLY);
    const got = await curl([
      "-x",
      `http://127.0.0.1:${squid.port}`,
      "--cacert",
      origin.caFile,
      `${origin.url}/hello`,
      `${origin.url}/hello`,
    ]);
    assert.equal(got.code, 0, got.stderr);
    assert.equal(got.stdout, HELLO_TEXT + HELLO_TEXT);
    assert.deepEqual(
      got.transfers.map((each) => [each.httpConnect, each.httpCode]),
      [[200, 200], [0, 200]],
    );
    assert.deepEqual(got.transfers.map((each) => each.numConnects), [1, 0]);
    // Inside a tunnel squid cannot add a header.
    assert.equal(origin.requests.length, 2);
    assert.equal(origin.requests[0].headers.get("via"), null);
    const log = await accessLog(squid.dir);
    assert.equal(log.length, 1, log.join("\n"));
    assert.match(
      log[0],
      new RegExp(`TCP_TUNNEL/200 .*CONNECT 127\\.0\\.0\\.1:${origin.port}`),
    );
  },
});

Deno.test({
  name: "git clones a repository over https through squid's CONNECT",
  ignore: noSquid || noGit,
  async fn() {
    await using certs = await certificates();
    await using server = await startGitHttpsServer(certs);
    await using squid = await startSquid(SQUID_LOOPBACK_ONLY);
    const clone = await gitClone(server.repoUrl, {
      proxy: `http://127.0.0.1:${squid.port}`,
      caFile: server.caFile,
    });
    assert.equal(clone.head, server.head);
    assert.deepEqual(clone.files, server.files);
    assert.ok(
      server.requests.some((each) => each.path === "/repo.git/git-upload-pack"),
    );
    assert.ok(
      (await accessLog(squid.dir)).every((line) =>
        line.includes(`CONNECT 127.0.0.1:${server.port}`)
      ),
    );
  },
});

Deno.test({
  name:
    "Chromium shows /page.html fetched through squid, and asks squid for nothing else",
  ignore: noSquid || noChromium,
  async fn() {
    await using origin = startHttpOrigin();
    await using squid = await startSquid(SQUID_LOOPBACK_ONLY);
    const dom = await chromiumFetch(`${origin.url}/page.html`, {
      proxyServer: `http://127.0.0.1:${squid.port}`,
    });
    assert.match(dom, new RegExp(`<title>${PAGE_TITLE}</title>`));
    const page = origin.requests.find((each) => each.path === "/page.html");
    assert.match(page?.headers.get("via") ?? "", /squid/);
    for (const line of await accessLog(squid.dir)) {
      assert.match(line, new RegExp(` GET ${origin.url}/`), line);
    }
  },
});

Deno.test({
  name:
    "Chromium shows the HTTPS page through squid's CONNECT, trusting the test certificate by its key",
  ignore: noSquid || noChromium,
  async fn() {
    await using certs = await certificates();
    await using origin = await startHttpsOrigin(certs);
    await using squid = await startSquid(SQUID_LOOPBACK_ONLY);
    const dom = await chromiumFetch(`${origin.url}/page.html`, {
      proxyServer: `http://127.0.0.1:${squid.port}`,
      trustSpki: [origin.spki],
    });
    assert.match(dom, new RegExp(`<title>${PAGE_TITLE}</title>`));
    assert.ok(origin.requests.some((each) => each.path === "/page.html"));
    for (const line of await accessLog(squid.dir)) {
      assert.match(line, new RegExp(`CONNECT 127\\.0\\.0\\.1:${origin.port}`));
    }
  },
});

Deno.test({
  name:
    "curl and git get through cntlm to squid requiring NTLM, which refuses them without cntlm",
  ignore: noSquid || noCntlm || noCurl || noGit,
  async fn() {
    await using certs = await certificates();
    await using origin = startHttpOrigin();
    await using git = await startGitHttpsServer(certs);
    await using squid = await startSquidWithNtlm();
    await using cntlm = await startCntlm({
      upstreamPort: squid.port,
      username: "jane",
      domain: "CORP",
      password: "Secret-123",
    });

    const refused = await curl([
      "-x",
      `http://127.0.0.1:${squid.port}`,
      `${origin.url}/hello`,
    ]);
    assert.equal(refused.httpCode, 407);

    const viaCntlm = ["-x", `http://127.0.0.1:${cntlm.port}`];
    const hello = await curl([...viaCntlm, `${origin.url}/hello`]);
    assert.equal(hello.httpCode, 200, hello.stderr);
    assert.equal(hello.stdout, HELLO_TEXT);
    const seen = origin.requests.at(-1)!;
    assert.match(seen.headers.get("via") ?? "", /squid/);
    assert.equal(seen.headers.get("proxy-authorization"), null);

    const tunneled = await curl([
      ...viaCntlm,
      "--cacert",
      git.caFile,
      `${git.url}/repo.git/info/refs?service=git-upload-pack`,
    ]);
    assert.equal(tunneled.transfers[0].httpConnect, 200, tunneled.stderr);
    assert.equal(tunneled.httpCode, 200);

    const clone = await gitClone(git.repoUrl, {
      proxy: `http://127.0.0.1:${cntlm.port}`,
      caFile: git.caFile,
    });
    assert.equal(clone.head, git.head);

    // squid logs the user it authenticated in the eighth field. (Its
    // ntlm_fake_auth reads only the first letter of cntlm's UTF-16 names:
    // CORP\jane is logged as C\j.)
    const log = await accessLog(squid.dir);
    const allowed = log.filter((line) => /\/200 /.test(line));
    assert.ok(allowed.length >= 3, log.join("\n"));
    for (const line of allowed) {
      assert.match(line.split(/\s+/)[7], /^C\\+j$/, line);
    }
  },
});

Deno.test({
  name: "netcat reaches an echo server through dante's SOCKS5",
  ignore: noDante || noNetcat,
  async fn() {
    await using echo = startEchoServer();
    await using dante = await startDante();
    const message = "hello through SOCKS5\n".repeat(100);
    const got = await netcatThroughSocks(
      dante.port,
      "127.0.0.1",
      echo.port,
      message,
    );
    assert.equal(got.code, 0, got.stderr);
    assert.equal(got.stdout, message);
  },
});

/** The sha256 of `data`, hex. */
function sha256(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/** A temporary file holding `data`, removed on disposal. */
async function tempFile(data: Uint8Array) {
  const path = await Deno.makeTempFile({ prefix: "httptunneling-upload-" });
  await Deno.writeFile(path, data);
  return {
    path,
    sha256: sha256(data),
    [Symbol.asyncDispose]: () => Deno.remove(path),
  };
}
