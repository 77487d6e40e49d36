/**
 * The PAC sandbox: a Worker without permissions answering
 * FindProxyForURL, its name lookups bridged to the main thread, located
 * errors, and hostile scripts contained (file and network access,
 * import(), huge allocations). A script that loops for ever is tested
 * with the sandbox process (pac_process_test.ts), since Deno cannot stop
 * a Worker's thread.
 */
import assert from "node:assert/strict";
import type { PacLookups } from "../lib/route/pac/lookups.ts";
import {
  PacSandbox,
  PacScriptError,
  PacTimeoutError,
} from "../lib/route/pac/sandbox.ts";
import { startServer } from "./_util/net.ts";

const FAKE_DNS: PacLookups = {
  resolveIpv4: (host) =>
    Promise.resolve(host === "intranet.test" ? ["10.1.2.3"] : []),
  resolveAll: (host) =>
    Promise.resolve(host === "intranet.test" ? ["fd00::5", "10.1.2.3"] : []),
  myAddresses: () => Promise.resolve(["192.0.2.44", "127.0.0.1"]),
};

async function answer(
  text: string,
  url = "https://intranet.test:22/",
  host = "intranet.test",
  lookups: PacLookups = FAKE_DNS,
  timeoutMs = 5_000,
): Promise<unknown> {
  const sandbox = new PacSandbox({ text, name: "t.pac" }, {
    lookups,
    timeoutMs,
  });
  try {
    return await sandbox.find(url, host);
  } finally {
    sandbox.close();
  }
}

async function failure(text: string): Promise<Error> {
  try {
    await answer(text);
  } catch (error) {
    return error as Error;
  }
  throw new Error("the script answered");
}

Deno.test("sandbox: FindProxyForURL sees the URL and host; lookups cross the bridge", async () => {
  assert.equal(
    await answer(
      `function FindProxyForURL(url, host) {
        return [url, host, dnsResolve(host), isResolvable("nowhere.test"),
          isInNet(host, "10.0.0.0", "255.0.0.0"), myIpAddress()].join(" ");
      }`,
    ),
    "https://intranet.test:22/ intranet.test 10.1.2.3 false true 192.0.2.44",
  );
});

Deno.test("sandbox: FindProxyForURLEx is preferred, with the Ex helpers", async () => {
  assert.equal(
    await answer(
      `function FindProxyForURL() { return "DIRECT"; }
       function FindProxyForURLEx(url, host) {
         return "PROXY ex:1; " + dnsResolveEx(host) + " " + myIpAddressEx();
       }`,
    ),
    "PROXY ex:1; fd00::5;10.1.2.3 192.0.2.44",
  );
});

Deno.test("sandbox: a lookup the main side does not answer in time is null, not a hang", async () => {
  const slow: PacLookups = {
    ...FAKE_DNS,
    resolveIpv4: () => new Promise(() => {}),
  };
  assert.equal(
    await answer(
      `function FindProxyForURL(url, host) { return String(dnsResolve(host)); }`,
      undefined,
      undefined,
      slow,
      1_000,
    ),
    "null",
  );
});

Deno.test("sandbox: a script that throws is an error at its line", async () => {
  const error = await failure(
    "var table = null;\nfunction FindProxyForURL(url, host) {\n  return table[host];\n}\n",
  );
  assert.ok(error instanceof PacScriptError);
  assert.match(
    error.message,
    /^t\.pac:3: FindProxyForURL\("https:\/\/intranet\.test:22\/", "intranet\.test"\) threw TypeError: Cannot read properties of null/,
  );
});

Deno.test("sandbox: a syntax error is located; a script without FindProxyForURL is named", async () => {
  const syntax = await failure(
    'function FindProxyForURL(url, host) {\n  if (host == "a" {\n    return "DIRECT";\n  }\n}\n',
  );
  assert.ok(syntax instanceof PacScriptError);
  assert.match(syntax.message, /^t\.pac:2: SyntaxError: /);
  const none = await failure("var FindProxy = 1;\n");
  assert.equal(
    none.message,
    "t.pac: the script defines no function FindProxyForURL(url, host) (nor FindProxyForURLEx)",
  );
  const top = await failure('var x = 1;\nthrow new Error("top level");\n');
  assert.equal(top.message, "t.pac:2: Error: top level");
});

Deno.test("sandbox: hostile scripts reach no file, no network and no module", async () => {
  const hits: string[] = [];
  await using server = startServer(async (conn) => {
    hits.push("connection");
    conn.close();
    await Promise.resolve();
  });
  const port = server.port;
  for (
    const [what, body] of [
      ["Deno.readTextFileSync", 'return Deno.readTextFileSync("/etc/passwd");'],
      [
        "globalThis.Deno",
        'return globalThis["De" + "no"].readTextFileSync("/etc/passwd");',
      ],
      ["fetch", `fetch("http://127.0.0.1:${port}/"); return "DIRECT";`],
      [
        "WebSocket",
        `new WebSocket("ws://127.0.0.1:${port}/"); return "DIRECT";`,
      ],
      ["Worker", 'new Worker("data:text/javascript,1"); return "DIRECT";'],
      ["close", 'close(); return "DIRECT";'],
      [
        "postMessage",
        'postMessage({ type: "answer", id: 1, value: "PROXY evil:1" }); return "DIRECT";',
      ],
    ]
  ) {
    const error = await failure(`function FindProxyForURL() { ${body} }`);
    assert.ok(error instanceof PacScriptError, what);
    assert.match(error.message, /threw (ReferenceError|TypeError)/, what);
  }
  // import() is syntax and cannot be removed: without permissions it
  // loads nothing from disk or the network.
  const sandbox = new PacSandbox({
    text: `var result = "pending";
     import("file:///etc/passwd").then(() => result = "read", () => result = "refused");
     import("http://127.0.0.1:${port}/x.js").then(() => result += " fetched", () => result += " refused");
     function FindProxyForURL() { return result; }`,
    name: "import.pac",
  }, { lookups: FAKE_DNS });
  try {
    await sandbox.find("https://a/", "a");
    // The imports settle after the script ran; a later call sees how.
    let result: unknown;
    for (let i = 0; i < 50 && !String(result).includes(" "); i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      result = await sandbox.find("https://a/", "a");
    }
    assert.equal(result, "refused refused");
  } finally {
    sandbox.close();
  }
  assert.deepEqual(hits, []);
});

Deno.test("sandbox: huge allocations fail inside the script; the process goes on", async () => {
  for (
    const body of [
      'return "x".repeat(2 ** 31);',
      "return String(new ArrayBuffer(2 ** 40).byteLength);",
      "return String(new Array(2 ** 32).length);",
    ]
  ) {
    const error = await failure(`function FindProxyForURL() { ${body} }`);
    assert.ok(error instanceof PacScriptError);
    assert.match(error.message, /RangeError/);
  }
  assert.equal(
    await answer('function FindProxyForURL() { return "DIRECT"; }'),
    "DIRECT",
  );
});

Deno.test("sandbox: evaluation longer than the limit is abandoned and the Worker started afresh", async () => {
  // Lookups of "h" are never answered: each blocks the Worker for nearly
  // the whole limit, so three of them overrun it. The Worker's thread is
  // blocked, not looping, so terminating it frees it.
  const lookups: PacLookups = {
    ...FAKE_DNS,
    resolveIpv4: (host) =>
      host === "h" ? new Promise(() => {}) : Promise.resolve(["10.0.0.1"]),
  };
  const logged: string[] = [];
  const sandbox = new PacSandbox({
    text:
      "function FindProxyForURL(url, host) { dnsResolve(host); dnsResolve(host); return 'PROXY ' + dnsResolve(host) + ':1'; }",
    name: "slow.pac",
  }, {
    lookups,
    timeoutMs: 300,
    log: (_level, message) => logged.push(message),
  });
  try {
    await assert.rejects(sandbox.find("https://h:1/", "h"), PacTimeoutError);
    assert.match(
      logged.join("\n"),
      /slow\.pac: FindProxyForURL\("https:\/\/h:1\/", "h"\) took longer than 300 ms and was abandoned/,
    );
    assert.equal(await sandbox.find("https://k:1/", "k"), "PROXY 10.0.0.1:1");
  } finally {
    sandbox.close();
  }
});
