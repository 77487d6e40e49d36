import assert from "node:assert/strict";
import {
  formatPacResult,
  MAX_PAC_ALTERNATIVES,
  MAX_PAC_RESULT_LENGTH,
  type PacAlternative,
  PacResultError,
  parsePacResult,
} from "../lib/route/pac/result.ts";

const proxy = (
  scheme: "http" | "https" | "socks4" | "socks5",
  host: string,
  port: number,
): PacAlternative => ({ kind: "proxy", scheme, host, port });
const DIRECT: PacAlternative = { kind: "direct" };

/** Asserts that `text` is refused with a message matching `message`. */
function refused(text: unknown, message: RegExp, item?: string) {
  assert.throws(
    () => parsePacResult(text),
    (error) => {
      assert.ok(error instanceof PacResultError, String(error));
      assert.match(error.message, message);
      assert.equal(error.item, item);
      return true;
    },
    String(text),
  );
}

// Chromium, net/proxy_resolution/proxy_list_unittest.cc, SetFromPacString:
// the valid inputs, with the PAC string Chromium formats back.
Deno.test("Chromium's SetFromPacString vectors parse and format back", () => {
  const cases: [string, PacAlternative[], string][] = [
    ["PROXY foopy:10", [proxy("http", "foopy", 10)], "PROXY foopy:10"],
    [" DIRECT", [DIRECT], "DIRECT"],
    [
      "PROXY foopy1 ; proxy foopy2;\t DIRECT",
      [proxy("http", "foopy1", 80), proxy("http", "foopy2", 80), DIRECT],
      "PROXY foopy1:80;PROXY foopy2:80;DIRECT",
    ],
    [
      "proxy foopy1 ; SOCKS foopy2",
      [proxy("http", "foopy1", 80), proxy("socks4", "foopy2", 1080)],
      "PROXY foopy1:80;SOCKS foopy2:1080",
    ],
    [
      "DIRECT ; proxy foopy1 ; DIRECT ; SOCKS5 foopy2;DIRECT ",
      [
        DIRECT,
        proxy("http", "foopy1", 80),
        DIRECT,
        proxy("socks5", "foopy2", 1080),
        DIRECT,
      ],
      "DIRECT;PROXY foopy1:80;DIRECT;SOCKS5 foopy2:1080;DIRECT",
    ],
    [
      "DIRECT ; proxy foopy1:80; DIRECT ; DIRECT",
      [DIRECT, proxy("http", "foopy1", 80), DIRECT, DIRECT],
      "DIRECT;PROXY foopy1:80;DIRECT;DIRECT",
    ],
  ];
  for (const [input, alternatives, chromium] of cases) {
    assert.deepEqual(parsePacResult(input), alternatives, input);
    // This tool separates with "; "; otherwise Chromium's text.
    assert.equal(formatPacResult(alternatives), chromium.replaceAll(";", "; "));
  }
});

// Chromium, net/base/proxy_string_util_unittest.cc,
// PacResultElementToProxyServer (every vector) and the host
// canonicalisation cases of ProxyUriToProxyServer, written as PAC items.
Deno.test("Chromium's PAC element vectors: keywords, default ports, canonical hosts", () => {
  const cases: [string, PacAlternative][] = [
    ["PROXY foopy:10", proxy("http", "foopy", 10)],
    ["   PROXY    foopy:10   ", proxy("http", "foopy", 10)],
    ["pRoXy foopy:10", proxy("http", "foopy", 10)],
    ["PROXY foopy", proxy("http", "foopy", 80)],
    ["socks foopy", proxy("socks4", "foopy", 1080)],
    ["socks4 foopy", proxy("socks4", "foopy", 1080)],
    ["socks5 foopy", proxy("socks5", "foopy", 1080)],
    ["socks5 foopy:11", proxy("socks5", "foopy", 11)],
    ["https foopy", proxy("https", "foopy", 443)],
    ["https foopy:10", proxy("https", "foopy", 10)],
    [
      "PROXY [FEDC:BA98:7654:3210:FEDC:BA98:7654:3210]:10",
      proxy("http", "fedc:ba98:7654:3210:fedc:ba98:7654:3210", 10),
    ],
    ["PROXY f\u00fcpy:85", proxy("http", "xn--fpy-hoa", 85)],
    // ProxyUriToProxyServer's canonicalisation cases.
    [
      "PROXY [3ffe:2a00:100:7031::1]",
      proxy("http", "3ffe:2a00:100:7031::1", 80),
    ],
    ["PROXY [::192.9.5.5]", proxy("http", "::c009:505", 80)],
    [
      "PROXY [::FFFF:129.144.52.38]:80",
      proxy("http", "::ffff:8190:3426", 80),
    ],
    ["HTTPS 0xA.020.3.4:443", proxy("https", "10.16.3.4", 443)],
    ["HTTPS 1.2.3.4:10", proxy("https", "1.2.3.4", 10)],
    ["PROXY FoO.tEsT:80", proxy("http", "foo.test", 80)],
  ];
  for (const [input, alternative] of cases) {
    assert.deepEqual(parsePacResult(input), [alternative], input);
  }
});

// Chromium, proxy_string_util_unittest.cc, InvalidPacResultElementToProxyServer
// and the invalid inputs of ProxyListTest.SetFromPacString. Chromium drops
// such items (and takes an answer left empty as DIRECT); this tool refuses
// the answer, naming the item.
Deno.test("Chromium's invalid PAC elements are refused, naming the item", () => {
  refused("PROXY", /"PROXY": PROXY needs an address/, "PROXY");
  refused("HTTPS", /HTTPS needs an address/, "HTTPS");
  refused("SOCKS", /SOCKS needs an address/, "SOCKS");
  refused("DIRECT foopy:10", /DIRECT takes no address/, "DIRECT foopy:10");
  refused(
    "INVALIDSCHEME",
    /"INVALIDSCHEME" is not a PAC keyword: use PROXY, HTTPS, SOCKS/,
    "INVALIDSCHEME",
  );
  refused(
    "INVALIDSCHEME foopy:10",
    /not a PAC keyword/,
    "INVALIDSCHEME foopy:10",
  );
  refused("HTTP foopy:10", /write PROXY host:port/, "HTTP foopy:10");
  refused(
    "PROXY-foopy:10",
    /"PROXY-foopy:10" is not a PAC keyword/,
    "PROXY-foopy:10",
  );
  refused(
    "PROXY foopy1 ; JUNK ; JUNK ; SOCKS5 foopy2 ; ;",
    /"JUNK" is not a PAC keyword/,
    "JUNK",
  );
  // ProxyUriToProxyServer's invalid hosts and ports, as PAC items.
  refused("PROXY dddf:", /the port must be a number/, "PROXY dddf:");
  refused("PROXY dddd:d", /the port must be a number/, "PROXY dddd:d");
  refused(
    "PROXY foopy.111",
    /"foopy.111" is not a host name/,
    "PROXY foopy.111",
  );
  refused("PROXY foo.test/", /is not a host name/, "PROXY foo.test/");
  refused(
    "PROXY foo.test:123/",
    /the port must be a number/,
    "PROXY foo.test:123/",
  );
});

// Chromium, proxy_resolver_v8_unittest.cc, BadReturnType and
// ReturnEmptyString (which Chromium takes as DIRECT).
Deno.test("an answer that is not a non-empty string is refused", () => {
  refused(undefined, /returned undefined, not a string: return e.g. "PROXY/);
  refused(0, /returned number, not a string/);
  refused(() => "DIRECT", /returned function, not a string/);
  refused({}, /returned object, not a string/);
  refused(null, /returned null, not a string/);
  refused("", /returned an empty answer/);
  refused(" ; ;\t", /returned an empty answer/);
});

Deno.test("ports, IPv6 brackets and hosts that could inject text are checked", () => {
  assert.deepEqual(parsePacResult("SOCKS5 [::1]:9050"), [
    proxy("socks5", "::1", 9050),
  ]);
  assert.deepEqual(parsePacResult("PROXY 192.0.2.1:65535"), [
    proxy("http", "192.0.2.1", 65535),
  ]);
  refused("PROXY a:0", /port must be a number 1–65535/, "PROXY a:0");
  refused("PROXY a:65536", /port must be a number/, "PROXY a:65536");
  refused("PROXY a:-1", /port must be a number/, "PROXY a:-1");
  refused(
    "PROXY ::1:8080",
    /write an IPv6 address in brackets, e.g. PROXY \[::1\]:80/,
    "PROXY ::1:8080",
  );
  refused("PROXY [::1", /is not a host name/, "PROXY [::1");
  refused(
    "PROXY [example.com]:80",
    /is not a host name/,
    "PROXY [example.com]:80",
  );
  refused("PROXY [::1]x:80", /is not a host name|port/, "PROXY [::1]x:80");
  refused("PROXY a b", /one address per alternative/, "PROXY a b");
  for (
    const host of ["user@evil:80", "a%0d%0ab:80", "a?b", "a#b", "a\\b", "a/b"]
  ) {
    assert.throws(() => parsePacResult(`PROXY ${host}`), PacResultError, host);
  }
  // Control characters are escaped in the message.
  refused("FOO\u0007", /"FOO\\u0007"/, "FOO\u0007");
});

Deno.test("answers are bounded: 64 KiB and 32 alternatives", () => {
  const most = Array(MAX_PAC_ALTERNATIVES).fill("DIRECT").join(";");
  assert.equal(parsePacResult(most).length, 32);
  refused(
    `${most};DIRECT`,
    /returned 33 alternatives, more than the 32 allowed/,
  );
  // Padding that trims away still counts against the length.
  const padded = `DIRECT${" ".repeat(MAX_PAC_RESULT_LENGTH - 6)}`;
  assert.deepEqual(parsePacResult(padded), [DIRECT]);
  refused(`${padded} `, /returned 65537 characters, more than the 65536/);
  // A long bad item is cut in the message and in `item`.
  const long = `FOO${"x".repeat(500)}`;
  assert.throws(() => parsePacResult(long), (error) => {
    assert.ok(error instanceof PacResultError);
    assert.equal(error.item?.length, 101);
    assert.ok(error.message.length < 400, error.message);
    return true;
  });
});

Deno.test("formatPacResult writes what parsePacResult reads back", () => {
  const alternatives: PacAlternative[] = [
    proxy("http", "proxy.corp", 3128),
    proxy("https", "2001:db8::1", 443),
    proxy("socks4", "10.0.0.1", 1080),
    proxy("socks5", "socks.corp", 9050),
    DIRECT,
  ];
  const text = formatPacResult(alternatives);
  assert.equal(
    text,
    "PROXY proxy.corp:3128; HTTPS [2001:db8::1]:443; SOCKS 10.0.0.1:1080; SOCKS5 socks.corp:9050; DIRECT",
  );
  assert.deepEqual(parsePacResult(text), alternatives);
  assert.equal(formatPacResult([]), "");
});
