/**
 * Negotiate (Kerberos/SPNEGO) proxy authentication: the pure parts against
 * published values and a scripted Kerberos, then the tool, run as the
 * command line runs it, against a real MIT KDC and squid's
 * negotiate_kerberos_auth on loopback.
 */
import assert from "node:assert/strict";
import {
  formatGssStatus,
  KerberosError,
  ProxyAuthError,
  ProxyRefusedError,
} from "../lib/errors.ts";
import {
  AuthFailure,
  ProxyAuthenticator,
} from "../lib/proxy/auth/authenticator.ts";
import { parseChallenges } from "../lib/proxy/auth/challenge.ts";
import {
  encodeOid,
  HOSTBASED_SERVICE_OID,
  type KerberosClient,
  kerberosProblem,
  MAX_TOKEN_BYTES,
  negotiateAuthorization,
  negotiateToken,
  servicePrincipal,
  SPNEGO_OID,
} from "../lib/proxy/auth/negotiate.ts";
import { httpConnect } from "../lib/proxy/http_connect.ts";
import { diagnose } from "../lib/probe/diagnose.ts";
import { inspectKerberos } from "../lib/probe/kerberos.ts";
import {
  bytes,
  connect,
  echoExchange,
  eventually,
  freePort,
  readAll,
  startEchoServer,
  startServer,
  text,
  within,
  writeAll,
} from "./_util/net.ts";
import {
  type Kdc,
  missingKerberos,
  REALM,
  startKdc,
  startSquidWithNegotiate,
} from "./_util/kerberos.ts";
import { curl } from "./_util/clients.ts";
import { HELLO_TEXT, startHttpOrigin } from "./_util/origins.ts";
import { missing, missingOnPath, type TestProcess } from "./_util/proxies.ts";
import { tempConfig, tool, waitForLog } from "./_util/tool.ts";

const hex = (data: Uint8Array) =>
  Array.from(data, (b) => b.toString(16).padStart(2, "0")).join(" ");

Deno.test("object identifiers: the DER of SPNEGO, host-based service and Kerberos 5 (RFC 4178, 2743, 1964)", () => {
  assert.equal(hex(encodeOid(SPNEGO_OID)), "2b 06 01 05 05 02");
  assert.equal(
    hex(encodeOid(HOSTBASED_SERVICE_OID)),
    "2a 86 48 86 f7 12 01 02 01 04",
  );
  assert.equal(
    hex(encodeOid("1.2.840.113554.1.2.2")),
    "2a 86 48 86 f7 12 01 02 02",
  );
  for (const wrong of ["1", "3.1", "1.40", "1.2.x", "1.-2"]) {
    assert.throws(() => encodeOid(wrong), RangeError, wrong);
  }
});

Deno.test("Negotiate framing: the service principal, the header, the proxy's token", () => {
  assert.equal(servicePrincipal("proxy.corp"), "HTTP@proxy.corp");
  assert.equal(servicePrincipal("[2001:db8::1]"), "HTTP@2001:db8::1");
  assert.equal(
    negotiateAuthorization(Uint8Array.of(0x60, 0x82, 0xff)),
    "Negotiate YIL/",
  );
  const [bare, token, garbage] = parseChallenges([
    "Negotiate",
    "Negotiate oRQwEqADCgEAoQsGCSqGSIb3EgECAg==",
    "Negotiate a===",
  ]);
  assert.equal(negotiateToken(bare), undefined);
  assert.equal(negotiateToken(token)?.[0], 0xa1);
  assert.equal(negotiateToken(garbage), undefined);
  const huge = parseChallenges([
    `Negotiate ${"A".repeat(MAX_TOKEN_BYTES * 2)}`,
  ])[0];
  assert.equal(negotiateToken(huge), undefined, "larger than the limit");
});

Deno.test("GSSAPI statuses: MIT's texts, as measured, mean what to do", () => {
  const status = (major: number, minorText: string) => ({
    major,
    minor: 100001,
    majorText: "",
    minorText,
  });
  const cases: [number, string, string][] = [
    [
      0x70000,
      "No Kerberos credentials available (default cache: FILE:/tmp/krb5cc_0)",
      "no-ticket",
    ],
    [0x70000, "SPNEGO cannot find mechanisms to negotiate", "no-ticket"],
    [0xd0000, "Ticket expired", "expired"],
    [0xb0000, "", "expired"],
    [
      0xd0000,
      "Server HTTP/127.0.0.1@HTTPTUNNELING.TEST not found in Kerberos database",
      "unknown-server",
    ],
    [0xd0000, "Clock skew too great", "clock-skew"],
    [
      0xd0000,
      "Cannot contact any KDC for realm 'CORP.EXAMPLE'",
      "kdc-unreachable",
    ],
    [0xd0000, "Something else", "failed"],
  ];
  for (const [major, minorText, problem] of cases) {
    assert.equal(kerberosProblem(status(major, minorText)), problem, minorText);
  }
  const error = new KerberosError("no-ticket", {
    spn: "HTTP@proxy.corp",
    gss: {
      major: 0x70000,
      minor: 0x96c73a8d,
      majorText: "No credentials were supplied",
      minorText: "No Kerberos credentials available",
    },
  });
  assert.equal(
    error.message,
    "no Kerberos ticket for HTTP@proxy.corp: run kinit (No Kerberos credentials available)",
  );
  assert.equal(
    formatGssStatus(error.gss!),
    "GSS major 0x70000 (No credentials were supplied), minor 0x96c73a8d (No Kerberos credentials available)",
  );
  assert.match(
    new KerberosError("ffi-denied").message,
    /run with --allow-ffi .*deno task compile:kerberos/,
  );
  assert.match(
    new KerberosError("library-missing").message,
    /libgssapi_krb5\.so\.2.*install libgssapi-krb5-2/,
  );
});

/** A scripted Kerberos: which SPNs were asked for, which contexts are open. */
function fakeKerberos(
  behaviour: {
    problem?: KerberosError;
    /** What `step` answers to the proxy's token. */
    reply?: (token: Uint8Array) => Uint8Array;
  } = {},
) {
  const asked: string[] = [];
  let open = 0;
  const client: KerberosClient = {
    start(spn) {
      asked.push(spn);
      if (behaviour.problem) throw behaviour.problem;
      open++;
      let disposed = false;
      return {
        spn,
        principal: "jane@CORP.EXAMPLE",
        step(serverToken) {
          if (!serverToken) return { token: bytes("first"), complete: false };
          const token = behaviour.reply?.(serverToken) ?? new Uint8Array(0);
          return { token, complete: true };
        },
        [Symbol.dispose]() {
          if (!disposed) open--;
          disposed = true;
        },
      };
    },
    credentials: () => ({ cache: "FILE:/tmp/fake" }),
  };
  return {
    client,
    asked,
    get open() {
      return open;
    },
  };
}

const NEGOTIATE_NTLM_BASIC = parseChallenges([
  'Basic realm="x"',
  "NTLM",
  "Negotiate",
]);
const NO_TICKET = new KerberosError("no-ticket", { spn: "HTTP@proxy.corp" });

Deno.test("authenticator: Negotiate first when a ticket is there, no password needed, continued with the proxy's token", () => {
  const kerberos = fakeKerberos({ reply: () => bytes("second") });
  using auth = new ProxyAuthenticator(undefined, "example.com:22", {
    proxyHost: "proxy.corp",
    kerberos: kerberos.client,
  });
  const first = auth.answer(NEGOTIATE_NTLM_BASIC);
  assert.deepEqual(first, {
    authorization: `Negotiate ${btoa("first")}`,
    scheme: "Negotiate",
    sameConnection: false,
    detail: "jane@CORP.EXAMPLE for HTTP@proxy.corp",
  });
  assert.deepEqual(kerberos.asked, ["HTTP@proxy.corp"]);
  const second = auth.answer(
    parseChallenges([`Negotiate ${btoa("server")}`]),
  );
  assert.equal(second.authorization, `Negotiate ${btoa("second")}`);
  assert.equal(second.sameConnection, true, "a context is one connection's");
  assert.equal(kerberos.open, 0, "a complete context is released");
  assert.equal(auth.next("CONNECT", "x:1"), undefined, "like NTLM");
});

Deno.test("authenticator: no ticket falls back to the next offered scheme with credentials, and says why", () => {
  const kerberos = fakeKerberos({ problem: NO_TICKET });
  const auth = new ProxyAuthenticator(
    { username: "CORP\\jane", password: "pw" },
    "example.com:22",
    { proxyHost: "proxy.corp", kerberos: kerberos.client },
  );
  assert.equal(auth.answer(NEGOTIATE_NTLM_BASIC).scheme, "NTLM");
  assert.equal(
    auth.kerberosProblem?.message,
    "no Kerberos ticket for HTTP@proxy.corp: run kinit",
  );
  // The NTLM rejected: a rejection, never Kerberos again nor a loop.
  assert.throws(
    () => auth.answer(NEGOTIATE_NTLM_BASIC),
    (error) =>
      error instanceof AuthFailure && error.failure === "handshake-failed",
  );
  assert.throws(
    () => auth.answer(NEGOTIATE_NTLM_BASIC),
    (error) =>
      error instanceof AuthFailure &&
      error.failure === "credentials-rejected" && error.detail === "NTLM",
  );
  assert.deepEqual(kerberos.asked, ["HTTP@proxy.corp"], "asked once");
});

Deno.test("authenticator: no ticket and nothing else to answer with is a failure that says what to do", () => {
  const kerberos = fakeKerberos({ problem: NO_TICKET });
  const options = { proxyHost: "proxy.corp", kerberos: kerberos.client };
  const only = new ProxyAuthenticator(undefined, "x:22", options);
  assert.throws(
    () => only.answer(parseChallenges(["Negotiate"])),
    (error) =>
      error instanceof AuthFailure && error.failure === "negotiate-failed" &&
      error.detail === "Negotiate" && error.cause === NO_TICKET,
  );
  const noPassword = new ProxyAuthenticator(undefined, "x:22", options);
  assert.throws(
    () => noPassword.answer(NEGOTIATE_NTLM_BASIC),
    (error) =>
      error instanceof AuthFailure &&
      error.failure === "credentials-needed" && error.cause === NO_TICKET,
  );
  const wrapped = new ProxyAuthError(
    "proxy.corp:3128",
    "x:22",
    "HTTP/1.1 407 Auth",
    "negotiate-failed",
    "Negotiate",
    { cause: NO_TICKET },
  );
  assert.equal(
    wrapped.message,
    'Proxy proxy.corp:3128 requires Kerberos authentication (offers Negotiate) for CONNECT x:22: "HTTP/1.1 407 Auth"; Negotiate: no Kerberos ticket for HTTP@proxy.corp: run kinit',
  );
  assert.equal(
    diagnose(wrapped, {
      proxy: "proxy.corp:3128",
      target: "x:22",
      step: "ask",
    }),
    "proxy proxy.corp:3128 requires Kerberos (Negotiate): no Kerberos ticket for HTTP@proxy.corp: run kinit",
  );
});

Deno.test("authenticator: a ticket the proxy does not accept falls back, or is a rejection", () => {
  const kerberos = fakeKerberos();
  using withPassword = new ProxyAuthenticator(
    { username: "jane", password: "pw" },
    "x:22",
    { proxyHost: "proxy.corp", kerberos: kerberos.client },
  );
  const challenges = parseChallenges(['Negotiate, Basic realm="x"']);
  assert.equal(withPassword.answer(challenges).scheme, "Negotiate");
  assert.equal(withPassword.answer(challenges).scheme, "Basic");
  assert.equal(withPassword.kerberosProblem?.problem, "rejected");
  assert.equal(kerberos.open, 0, "the context is released on the fallback");
  using without = new ProxyAuthenticator(undefined, "x:22", {
    proxyHost: "proxy.corp",
    kerberos: kerberos.client,
  });
  const negotiate = parseChallenges(["Negotiate"]);
  assert.equal(without.answer(negotiate).scheme, "Negotiate");
  assert.throws(
    () => without.answer(negotiate),
    (error) =>
      error instanceof AuthFailure &&
      error.failure === "credentials-rejected" && error.detail === "Negotiate",
  );
  assert.equal(kerberos.open, 0);
});

Deno.test("authenticator: without the proxy's host (the local proxy's requests) Negotiate is not tried", () => {
  const kerberos = fakeKerberos();
  const auth = new ProxyAuthenticator(undefined, "http://x/", {
    method: "GET",
    kerberos: kerberos.client,
  });
  assert.throws(
    () => auth.answer(parseChallenges(["Negotiate"])),
    (error) =>
      error instanceof AuthFailure && error.failure === "credentials-needed",
  );
  assert.deepEqual(kerberos.asked, []);
});

Deno.test("CONNECT: a proxy that answers every Negotiate token with another is given up after the round limit", async () => {
  let requests = 0;
  const kerberos = fakeKerberos({ reply: () => bytes("more") });
  // Each reply needs another: the scripted context never completes.
  const endless: KerberosClient = {
    ...kerberos.client,
    start(spn) {
      const context = kerberos.client.start(spn);
      return {
        ...context,
        spn,
        step: (token) => ({ ...context.step(token), complete: false }),
        [Symbol.dispose]: () => context[Symbol.dispose](),
      };
    },
  };
  await using proxy = startServer(async (conn) => {
    const buffer = new Uint8Array(8192);
    let pending = "";
    while (true) {
      const n = await conn.read(buffer);
      if (n === null) return;
      pending += text(buffer.subarray(0, n));
      while (pending.includes("\r\n\r\n")) {
        pending = pending.slice(pending.indexOf("\r\n\r\n") + 4);
        requests++;
        await writeAll(
          conn,
          bytes(
            `HTTP/1.1 407 Auth\r\nProxy-Authenticate: Negotiate ${
              btoa("again")
            }\r\nContent-Length: 0\r\n\r\n`,
          ),
        );
      }
    }
  });
  const stream = await connect(proxy.port);
  await assert.rejects(
    within(
      httpConnect(stream, { host: "example.com", port: 22 }, {
        proxyLabel: `localhost:${proxy.port}`,
        timeoutMs: 5_000,
        kerberos: endless,
      }),
      10_000,
      "CONNECT",
    ),
    (error) => error instanceof ProxyRefusedError && error.status === 407,
  );
  assert.equal(requests, 5, "the first request and four answers");
  assert.equal(kerberos.open, 0, "the context is released at the end");
});

Deno.test("probe's Kerberos view: cache, principal, lifetime, SPN; GSSAPI's status on failure", () => {
  const good = inspectKerberos("proxy.corp", {
    start: fakeKerberos().client.start,
    credentials: () => ({
      cache: "FILE:/tmp/krb5cc_1000",
      principal: "jane@CORP.EXAMPLE",
      lifetimeSeconds: 35_880,
    }),
  });
  assert.deepEqual(good, {
    spn: "HTTP@proxy.corp",
    ok: true,
    detail:
      "ticket cache FILE:/tmp/krb5cc_1000, client jane@CORP.EXAMPLE (valid 9h 58m), SPN HTTP@proxy.corp: token made",
  });
  const unknown = new KerberosError("unknown-server", {
    spn: "HTTP@10.1.2.3",
    gss: {
      major: 0xd0000,
      minor: 0x186a5,
      majorText:
        "Unspecified GSS failure.  Minor code may provide more information",
      minorText: "Server HTTP/10.1.2.3@CORP not found in Kerberos database",
    },
  });
  const bad = inspectKerberos("10.1.2.3", {
    start: () => {
      throw unknown;
    },
    credentials: () => ({ cache: "FILE:/tmp/krb5cc_1000" }),
  });
  assert.equal(bad.ok, false);
  assert.match(
    bad.detail,
    /^ticket cache FILE:\/tmp\/krb5cc_1000, SPN HTTP@10\.1\.2\.3: the Kerberos KDC knows no service HTTP@10\.1\.2\.3: .*; GSS major 0xd0000 \(Unspecified GSS failure\. {2}Minor code may provide more information\), minor 0x186a5 \(Server HTTP\/10\.1\.2\.3@CORP not found in Kerberos database\)$/,
  );
});

// Real Kerberos from here on: the tool runs as `deno task start` and the
// compile:kerberos binary do, with the compile task's permissions and
// --allow-ffi, its KRB5_CONFIG and KRB5CCNAME from the environment.

const noKerberos = missing("squid") || missingKerberos();
const JANE_PASSWORD = "jane-Pa55";

interface KerberosTool extends AsyncDisposable {
  /** Its log file, at debug level. */
  readonly log: string;
}

/** Runs the tool on `config` with a Kerberos client environment. */
async function startKerberosTool(
  config: string,
  env: Record<string, string>,
  options: { ffi?: boolean } = {},
): Promise<KerberosTool> {
  const dir = await tempConfig(config);
  const child = tool(
    ["run", "--log-level", "debug"],
    dir,
    env,
    options.ffi === false ? [] : ["--allow-ffi"],
  ).spawn();
  const log = `${dir}/HTTPTunneling.log`;
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch { /* exited */ }
    await within(child.output(), 10_000, "the tool's exit");
    await Deno.remove(dir, { recursive: true });
  };
  try {
    await waitForLog(log, /config applied/);
  } catch (error) {
    await stop();
    throw error;
  }
  return { log, [Symbol.asyncDispose]: stop };
}

/** Connects through a failing tunnel: the tool closes without a byte. */
async function assertClosed(port: number): Promise<void> {
  using conn = await connect(port);
  assert.equal(
    (await within(readAll(conn), 10_000, "the tool closing")).length,
    0,
  );
}

/** squid's access log once it has a line matching `pattern`. */
function accessLog(squid: TestProcess, pattern: RegExp): Promise<string> {
  return eventually(
    async () => {
      const log = await Deno.readTextFile(`${squid.dir}/access.log`).catch(() =>
        ""
      );
      return pattern.test(log) && log;
    },
    10_000,
    `squid access log line ${pattern}`,
  );
}

async function withRealm(
  run: (kdc: Kdc, ccache: string) => Promise<void>,
): Promise<void> {
  await using kdc = await startKdc({ users: { jane: JANE_PASSWORD } });
  await run(kdc, await kdc.kinit("jane", JANE_PASSWORD));
}

Deno.test({
  name:
    "real KDC and squid: kinit, then a proxy URL without credentials tunnels through a Negotiate-only squid as the ticket's principal",
  ignore: noKerberos,
  async fn() {
    await withRealm(async (kdc, ccache) => {
      await using squid = await startSquidWithNegotiate(kdc);
      await using echo = startEchoServer();
      const port = freePort();
      await using running = await startKerberosTool(
        `${port} 127.0.0.1 ${echo.port} http://localhost:${squid.port}\n`,
        kdc.clientEnv(ccache),
      );
      assert.equal(await echoExchange(port, "kerberos ok"), "kerberos ok");
      assert.equal(await echoExchange(port, "and again"), "and again");
      await accessLog(
        squid,
        new RegExp(
          `TCP_TUNNEL/200 .* CONNECT 127\\.0\\.0\\.1:${echo.port} jane@${
            REALM.replaceAll(".", "\\.")
          } `,
        ),
      );
      const log = await waitForLog(
        running.log,
        /CONNECT 127\.0\.0\.1:\d+ through proxy localhost:\d+: Negotiate \(jane@HTTPTUNNELING\.TEST for HTTP@localhost\)[^\n]*\n(.|\n)*CONNECT 127\.0\.0\.1:\d+ through proxy localhost:\d+: Negotiate/,
      );
      const info = log.split("\n").filter((line) =>
        /proxy localhost:\d+ authenticates with Negotiate \(jane@HTTPTUNNELING\.TEST for HTTP@localhost\)$/
          .test(line)
      );
      assert.equal(info.length, 1, "once per proxy at info level");
      assert.match(info[0], /\[INF\]/);
    });
  },
});

Deno.test({
  name:
    "real KDC and squid: no ticket says run kinit; squid offering NTLM too gets NTLM instead, and the log says why",
  ignore: noKerberos,
  async fn() {
    await using kdc = await startKdc({ users: { jane: JANE_PASSWORD } });
    await using onlyNegotiate = await startSquidWithNegotiate(kdc);
    await using both = await startSquidWithNegotiate(kdc, { ntlm: true });
    await using echo = startEchoServer();
    const [alone, fallback] = [freePort(), freePort()];
    await using running = await startKerberosTool(
      `${alone} 127.0.0.1 ${echo.port} http://localhost:${onlyNegotiate.port}\n` +
        `${fallback} 127.0.0.1 ${echo.port} http://CORP%5Cjane:pw@localhost:${both.port}\n`,
      kdc.clientEnv(),
    );
    await assertClosed(alone);
    await waitForLog(
      running.log,
      /failed .*Proxy localhost:\d+ requires Kerberos authentication \(offers Negotiate\) for CONNECT 127\.0\.0\.1:\d+: "HTTP\/1\.1 407 Proxy Authentication Required"; Negotiate: no Kerberos ticket for HTTP@localhost: run kinit \(No Kerberos credentials available \(default cache: FILE:.*no-such-cache\)\)/,
    );
    assert.equal(await echoExchange(fallback, "ntlm ok"), "ntlm ok");
    await accessLog(
      both,
      /TCP_TUNNEL\/200 .* CONNECT 127\.0\.0\.1:\d+ C\\\\j /,
    );
    await waitForLog(
      running.log,
      /\[INF\] .*proxy localhost:\d+ authenticates with NTLM, Negotiate not used: no Kerberos ticket for HTTP@localhost: run kinit/,
    );
  },
});

Deno.test({
  name:
    "real KDC and squid: an expired ticket (kinit -l 5s) says so and what to do",
  ignore: noKerberos,
  async fn() {
    await using kdc = await startKdc({ users: { jane: JANE_PASSWORD } });
    const ccache = await kdc.kinit("jane", JANE_PASSWORD, "5s");
    await using squid = await startSquidWithNegotiate(kdc);
    await using echo = startEchoServer();
    // klist -s fails once no ticket in the cache is valid.
    await eventually(
      async () => {
        const { code } = await new Deno.Command("klist", {
          args: ["-s"],
          env: kdc.clientEnv(ccache),
        }).output();
        return code !== 0;
      },
      15_000,
      "the ticket's expiry",
    );
    const port = freePort();
    await using running = await startKerberosTool(
      `${port} 127.0.0.1 ${echo.port} http://localhost:${squid.port}\n`,
      kdc.clientEnv(ccache),
    );
    await assertClosed(port);
    await waitForLog(
      running.log,
      /failed .*; Negotiate: no valid Kerberos ticket for HTTP@localhost, the cached ones have expired: run kinit/,
    );
  },
});

Deno.test({
  name:
    "real KDC and squid: a proxy name with no principal gets GSSAPI's own words, in the log and in probe",
  ignore: noKerberos,
  async fn() {
    await withRealm(async (kdc, ccache) => {
      await using squid = await startSquidWithNegotiate(kdc);
      await using echo = startEchoServer();
      const port = freePort();
      await using running = await startKerberosTool(
        `${port} 127.0.0.1 ${echo.port} http://127.0.0.1:${squid.port}\n`,
        kdc.clientEnv(ccache),
      );
      await assertClosed(port);
      await waitForLog(
        running.log,
        /; Negotiate: the Kerberos KDC knows no service HTTP@127\.0\.0\.1: write the proxy's name as its Kerberos principal has it \(often the full DNS name\) \(Server HTTP\/127\.0\.0\.1@HTTPTUNNELING\.TEST not found in Kerberos database\)/,
      );
      const probe = async (proxyHost: string) => {
        const { stdout } = await within(
          kerberosCommand(
            [
              "probe",
              "127.0.0.1",
              String(echo.port),
              "--proxy",
              `http://${proxyHost}:${squid.port}`,
            ],
            kdc.clientEnv(ccache),
          ).output(),
          30_000,
          "probe",
        );
        return text(stdout);
      };
      const wrong = await probe("127.0.0.1");
      assert.match(
        wrong,
        /FAIL +Kerberos for HTTP@127\.0\.0\.1 .* ticket cache FILE:.*cc-jane-1, client jane@HTTPTUNNELING\.TEST \(valid (\dh )?\d+m( \d+s)?\), SPN HTTP@127\.0\.0\.1: .*GSS major 0xd0000 \(Unspecified GSS failure\. {2}Minor code may provide more information\), minor 0x[0-9a-f]+ \(Server HTTP\/127\.0\.0\.1@HTTPTUNNELING\.TEST not found in Kerberos database\)/,
      );
      assert.match(
        wrong,
        /=> proxy 127\.0\.0\.1:\d+ requires Kerberos \(Negotiate\): the Kerberos KDC knows no service HTTP@127\.0\.0\.1/,
      );
      const right = await probe("localhost");
      assert.match(
        right,
        /authentication offered: Negotiate, used: Negotiate/,
      );
      assert.match(
        right,
        /ok +Kerberos for HTTP@localhost .* client jane@HTTPTUNNELING\.TEST .*SPN HTTP@localhost: token made/,
      );
      assert.match(right, /=> works/);
    });
  },
});

/** The tool as a child, its output piped: `probe` with a Kerberos environment. */
function kerberosCommand(
  args: string[],
  env: Record<string, string>,
): Deno.Command {
  return tool(args, undefined, env, ["--allow-ffi"]);
}

Deno.test({
  name:
    "real KDC and squid: with the default compile task's permissions (no --allow-ffi) Negotiate says which flag to add, and NTLM still works",
  ignore: noKerberos,
  async fn() {
    await withRealm(async (kdc, ccache) => {
      await using onlyNegotiate = await startSquidWithNegotiate(kdc);
      await using both = await startSquidWithNegotiate(kdc, { ntlm: true });
      await using echo = startEchoServer();
      const [alone, fallback] = [freePort(), freePort()];
      await using running = await startKerberosTool(
        `${alone} 127.0.0.1 ${echo.port} http://localhost:${onlyNegotiate.port}\n` +
          `${fallback} 127.0.0.1 ${echo.port} http://CORP%5Cjane:pw@localhost:${both.port}\n`,
        kdc.clientEnv(ccache),
        { ffi: false },
      );
      await assertClosed(alone);
      await waitForLog(
        running.log,
        /; Negotiate: Kerberos needs Deno's FFI: run with --allow-ffi \(deno task start has it; build the binary with deno task compile:kerberos\)/,
      );
      assert.equal(await echoExchange(fallback, "ntlm ok"), "ntlm ok");
      await accessLog(
        both,
        /TCP_TUNNEL\/200 .* CONNECT 127\.0\.0\.1:\d+ C\\\\j /,
      );
    });
  },
});

Deno.test({
  name:
    "real KDC and squid: curl through the tool's local HTTP proxy to a Negotiate-only squid, by CONNECT and by plain GET",
  ignore: noKerberos || missingOnPath("curl"),
  async fn() {
    await withRealm(async (kdc, ccache) => {
      await using squid = await startSquidWithNegotiate(kdc);
      await using origin = startHttpOrigin();
      const port = freePort();
      await using _running = await startKerberosTool(
        `${port} proxy http://localhost:${squid.port}\n`,
        kdc.clientEnv(ccache),
      );
      // -p: curl asks the local proxy for a tunnel, even for http://.
      const result = await curl([
        "-p",
        "-x",
        `http://127.0.0.1:${port}`,
        `${origin.url}/hello`,
      ]);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout, HELLO_TEXT);
      await accessLog(
        squid,
        new RegExp(
          `TCP_TUNNEL/200 .* CONNECT 127\\.0\\.0\\.1:${origin.port} jane@HTTPTUNNELING\\.TEST `,
        ),
      );
      // A plain request, in absolute form: the tool answers squid's 407
      // with the ticket too.
      const plain = await curl([
        "-x",
        `http://127.0.0.1:${port}`,
        `${origin.url}/hello`,
      ]);
      assert.equal(plain.code, 0, plain.stderr);
      assert.equal(plain.stdout, HELLO_TEXT);
      await accessLog(
        squid,
        new RegExp(
          `TCP_MISS/200 .* GET http://127\\.0\\.0\\.1:${origin.port}/hello jane@HTTPTUNNELING\\.TEST `,
        ),
      );
    });
  },
});

Deno.test({
  name:
    "real KDC and squid: spn-host=canonical asks for the name the resolver gives back (127.0.0.1 -> localhost), and probe shows it",
  ignore: noKerberos,
  async fn() {
    await withRealm(async (kdc, ccache) => {
      await using squid = await startSquidWithNegotiate(kdc);
      await using echo = startEchoServer();
      const port = freePort();
      await using _running = await startKerberosTool(
        `${port} 127.0.0.1 ${echo.port} http://127.0.0.1:${squid.port} spn-host=canonical\n`,
        kdc.clientEnv(ccache),
      );
      assert.equal(await echoExchange(port, "canonical"), "canonical");
      await accessLog(
        squid,
        new RegExp(`TCP_TUNNEL/200 .* jane@${REALM.replaceAll(".", "\\.")} `),
      );
    });
  },
});
