/**
 * Property-based tests of every parser that reads the network or the user:
 * whatever the input, each throws nothing but its typed error, stays within
 * its size caps, and gives the same result however the input is split into
 * chunks. A fixed seed and a bounded run count here; `deno task fuzz` runs
 * many more (FUZZ_RUNS).
 */
import assert from "node:assert/strict";
import fc from "npm:fast-check@4.3.0";
import { parseConfig } from "../lib/config/grammar.ts";
import { EntryError } from "../lib/config/field.ts";
import { parseProxyUrlText } from "../lib/config/proxy_url.ts";
import { ConfigError, ProxyProtocolError } from "../lib/errors.ts";
import { chunkSize } from "../lib/local/http1_body.ts";
import {
  HttpMessageError,
  readRequestHead,
  type RequestHead,
} from "../lib/local/http1.ts";
import { BufferedDuplex } from "../lib/net/buffered.ts";
import type { Duplex } from "../lib/net/duplex.ts";
import { parseChallenges } from "../lib/proxy/auth/challenge.ts";
import { parseNtlmChallenge } from "../lib/proxy/auth/ntlm.ts";
import {
  MAX_RESPONSE_HEAD_BYTES,
  type ResponseHead,
  ResponseHeadReader,
} from "../lib/proxy/http_head.ts";
import { socksReplyLength } from "../lib/proxy/socks5.ts";

const RUNS = Number(Deno.env.get("FUZZ_RUNS") ?? 200);
const SETTINGS = { numRuns: RUNS, seed: 20261205 };

/** Text that looks like what each parser reads: its own tokens, mixed with noise. */
function textFrom(tokens: string[]): fc.Arbitrary<string> {
  return fc.array(
    fc.oneof(
      fc.constantFrom(...tokens),
      fc.string({ maxLength: 12 }),
      fc.constantFrom("\r", "\n", "\r\n", "\t", " ", "\0", ":", "@", "%"),
    ),
    { maxLength: 40 },
  ).map((parts) => parts.join(""));
}

/** Splits bytes into chunks at the given cut points. */
function chunksOf(data: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (data.length + 1)))].sort((
    a,
    b,
  ) => a - b);
  const chunks: Uint8Array[] = [];
  let from = 0;
  for (const point of [...points, data.length]) {
    if (point > from) chunks.push(data.subarray(from, point));
    from = point;
  }
  return chunks;
}

/** A stream that hands out `chunks` one read at a time, then ends. */
function chunkStream(chunks: Uint8Array[]): Duplex {
  let next = 0;
  return {
    read(buffer) {
      const chunk = chunks[next];
      if (chunk === undefined) return Promise.resolve(null);
      const n = Math.min(buffer.length, chunk.length);
      buffer.set(chunk.subarray(0, n));
      if (n === chunk.length) next++;
      else chunks[next] = chunk.subarray(n);
      return Promise.resolve(n);
    },
    write: (data) => Promise.resolve(data.length),
    closeWrite: () => Promise.resolve(),
    close: () => {},
  };
}

Deno.test("fuzz: config text never throws; every problem is a located ConfigError", () => {
  const line = textFrom([
    "2222",
    "0.0.0.0:80",
    "[::1]:22",
    "host",
    "22",
    "proxy",
    "socks",
    "direct",
    "env",
    "http://u:p@h:3128",
    "socks5h://h:1080",
    "${HOME}",
    "idle-timeout=5s",
    "allow=10.0.0.0/8",
    "#",
  ]);
  fc.assert(
    fc.property(fc.array(line, { maxLength: 8 }), (lines) => {
      const text = lines.join("\n");
      const { entries, errors } = parseConfig(text, "f.conf");
      assert.ok(entries.length + errors.length <= text.split("\n").length);
      for (const error of errors) {
        assert.ok(error instanceof ConfigError);
        assert.match(error.message, /^f\.conf:\d+:\d+: /);
      }
    }),
    SETTINGS,
  );
});

Deno.test("fuzz: proxy URLs throw only EntryError, never quoting a password", () => {
  fc.assert(
    fc.property(
      fc.constantFrom("http://", "https://", "socks5://", "ftp://", ""),
      textFrom(["u", "%41", "%zz", "\\"]),
      textFrom(["h", ":3128", "[::1]", "]", "/", ":", "@"]),
      (scheme, user, rest) => {
        const text = `${scheme}${user}:S3cret@${rest}`;
        try {
          parseProxyUrlText(text);
        } catch (error) {
          assert.ok(error instanceof EntryError, String(error));
          assert.doesNotMatch(error.message, /S3cret/);
        }
      },
    ),
    SETTINGS,
  );
});

Deno.test("fuzz: a proxy's response head reads the same whatever the chunks, and is capped", () => {
  const head = textFrom([
    "HTTP/1.1 200 OK",
    "HTTP/1.0 407 x",
    "\r\n",
    "\n",
    "Proxy-Authenticate: NTLM",
    "Content-Length: 3",
    " folded",
  ]);
  fc.assert(
    fc.property(
      head,
      fc.array(fc.nat(), { maxLength: 6 }),
      (text, cuts) => {
        const data = new TextEncoder().encode(text);
        const read = (chunks: Uint8Array[]) => {
          const reader = new ResponseHeadReader();
          try {
            for (const [index, chunk] of chunks.entries()) {
              const result: ResponseHead | undefined = reader.push(chunk);
              // What follows the head: the rest of this chunk and the next.
              const after = () => [
                ...reader.rest,
                ...chunks.slice(index + 1).flatMap((later) => [...later]),
              ];
              if (result) return { head: result, rest: after() };
            }
            return "incomplete";
          } catch (error) {
            assert.ok(error instanceof ProxyProtocolError, String(error));
            return "refused";
          }
        };
        const whole = read([data]);
        const split = read(chunksOf(data, cuts));
        // A split can only make the reader see a non-HTTP start sooner.
        if (whole !== "refused" && split !== "refused") {
          assert.deepEqual(split, whole);
        }
      },
    ),
    SETTINGS,
  );
  // Bytes without an end of head are refused once past the cap.
  const reader = new ResponseHeadReader();
  assert.throws(
    () => {
      reader.push(new TextEncoder().encode("HTTP/1.1 200 OK\r\n"));
      for (let i = 0; i <= MAX_RESPONSE_HEAD_BYTES / 1024; i++) {
        reader.push(
          new TextEncoder().encode("X: " + "y".repeat(1020) + "\r\n"),
        );
      }
    },
    ProxyProtocolError,
  );
});

Deno.test("fuzz: Proxy-Authenticate challenges and NTLM type 2 messages", () => {
  fc.assert(
    fc.property(
      fc.array(
        textFrom([
          "NTLM",
          "Basic",
          "Digest",
          "Negotiate",
          "realm=",
          '"',
          ",",
          "=",
          "nonce",
          "qop=auth",
          "stale=true",
        ]),
        { maxLength: 4 },
      ),
      (values) => {
        for (const challenge of parseChallenges(values)) {
          assert.equal(typeof challenge.scheme, "string");
        }
      },
    ),
    SETTINGS,
  );
  const signature = [...new TextEncoder().encode("NTLMSSP\0")];
  fc.assert(
    fc.property(
      fc.oneof(
        fc.uint8Array({ maxLength: 96 }),
        fc.uint8Array({ minLength: 24, maxLength: 96 }).map((bytes) =>
          Uint8Array.from([...signature, 2, 0, 0, 0, ...bytes])
        ),
      ),
      (bytes) => {
        try {
          parseNtlmChallenge(bytes);
        } catch (error) {
          assert.ok(error instanceof Error);
          assert.match(error.message, /NTLM challenge/);
        }
      },
    ),
    SETTINGS,
  );
});

Deno.test("fuzz: SOCKS5 reply lengths and chunk sizes throw only their typed errors", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 8 }), (bytes) => {
      try {
        const length = socksReplyLength(bytes);
        if (length !== undefined) assert.ok(length >= 10 && length <= 262);
      } catch (error) {
        assert.ok(error instanceof ProxyProtocolError, String(error));
      }
    }),
    SETTINGS,
  );
  fc.assert(
    fc.property(
      textFrom(["0", "1a", "ffffffffffffffffff", ";ext=1", " ", "\t", "x"]),
      (line) => {
        try {
          const size = chunkSize(line);
          assert.ok(Number.isSafeInteger(size) && size >= 0);
        } catch (error) {
          assert.ok(error instanceof HttpMessageError, String(error));
        }
      },
    ),
    SETTINGS,
  );
});

Deno.test("fuzz: the local proxy's request heads read the same whatever the chunks", async () => {
  const request = textFrom([
    "GET http://h/ HTTP/1.1",
    "CONNECT h:443 HTTP/1.1",
    "\r\n",
    "\n",
    "Host: h",
    "Content-Length: 5",
    "Transfer-Encoding: chunked",
    " folded",
    "Bad Name: x",
  ]);
  await fc.assert(
    fc.asyncProperty(
      request,
      fc.array(fc.nat(), { maxLength: 6 }),
      async (text, cuts) => {
        const data = new TextEncoder().encode(text);
        const read = async (chunks: Uint8Array[]) => {
          const input = new BufferedDuplex(chunkStream(chunks), {
            onEnd: () => new HttpMessageError(400, "ended"),
          });
          try {
            const head: RequestHead | undefined = await readRequestHead(input);
            // What follows the head, read ahead or still in the stream.
            const rest: number[] = [];
            const buffer = new Uint8Array(64);
            for (let n; (n = await input.read(buffer)) !== null;) {
              rest.push(...buffer.subarray(0, n));
            }
            return { head, rest };
          } catch (error) {
            assert.ok(error instanceof HttpMessageError, String(error));
            return { status: error.status };
          }
        };
        assert.deepEqual(
          await read(chunksOf(data, cuts)),
          await read(chunksOf(data, [])),
        );
      },
    ),
    SETTINGS,
  );
});
