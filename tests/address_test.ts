import assert from "node:assert/strict";
import {
  ipBytes,
  ipText,
  isIPv4,
  isLinkLocal,
  prefixMatches,
} from "../lib/net/address.ts";
import { concat } from "../lib/net/bytes.ts";

Deno.test("isIPv4 accepts dotted quads 0-255 only", () => {
  for (const good of ["0.0.0.0", "127.0.0.1", "255.255.255.255", "10.1.2.3"]) {
    assert.ok(isIPv4(good), good);
  }
  for (const bad of ["256.1.1.1", "1.2.3", "1.2.3.4.5", "a.b.c.d", "", "::1"]) {
    assert.ok(!isIPv4(bad), bad);
  }
});

Deno.test("ipBytes: IPv4, and IPv6 in the written forms of RFC 4291 §2.2", () => {
  assert.deepEqual([...ipBytes("192.0.2.33")!], [192, 0, 2, 33]);
  const hex = (address: string) =>
    [...ipBytes(address)!].map((b) => b.toString(16).padStart(2, "0")).join("");
  // The same address written in full, with zeros dropped, and with "::".
  for (
    const form of [
      "2001:0DB8:0000:0000:0008:0800:200C:417A",
      "2001:DB8:0:0:8:800:200C:417A",
      "2001:DB8::8:800:200C:417A",
    ]
  ) {
    assert.equal(hex(form), "20010db80000000000080800200c417a", form);
  }
  assert.equal(hex("::1"), "00000000000000000000000000000001");
  assert.equal(hex("::"), "00000000000000000000000000000000");
  assert.equal(hex("ff01::"), "ff010000000000000000000000000000");
  // Embedded IPv4 (§2.2, form 3).
  assert.equal(hex("::ffff:129.144.52.38"), "00000000000000000000ffff81903426");
  assert.equal(ipBytes("example.com"), undefined);
  assert.equal(ipBytes("300.1.1.1"), undefined);
});

Deno.test("concat joins any number of byte arrays", () => {
  assert.deepEqual(
    [...concat(Uint8Array.of(1), new Uint8Array(0), Uint8Array.of(2, 3))],
    [1, 2, 3],
  );
  assert.equal(concat().length, 0);
});

Deno.test("ipText: the inverse of ipBytes, IPv6 in the RFC 5952 form", () => {
  assert.equal(ipText(Uint8Array.of(192, 0, 2, 33)), "192.0.2.33");
  for (
    const [written, canonical] of [
      ["2001:0DB8:0:0:0:0:0:1", "2001:db8::1"],
      ["0:0:0:0:0:0:0:0", "::"],
      ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
      ["::ffff:192.0.2.1", "::ffff:c000:201"],
    ]
  ) assert.equal(ipText(ipBytes(written)!), canonical);
  assert.throws(() => ipText(Uint8Array.of(1, 2, 3)), RangeError);
});

Deno.test("isLinkLocal: 169.254.0.0/16 and fe80::/10 (RFC 3927, RFC 4291 §2.5.6)", () => {
  for (const yes of ["169.254.0.1", "169.254.255.255", "fe80::1", "febf::1"]) {
    assert.ok(isLinkLocal(yes), yes);
  }
  for (
    const no of ["169.253.0.1", "10.0.0.1", "fec0::1", "fe7f::1", "::1", "host"]
  ) {
    assert.ok(!isLinkLocal(no), no);
  }
});

Deno.test("prefixMatches compares the first bits, whole and partial bytes", () => {
  const bytes = (address: string) => ipBytes(address)!;
  assert.ok(prefixMatches(bytes("198.95.1.1"), bytes("198.95.3.3"), 16));
  assert.ok(!prefixMatches(bytes("198.96.1.1"), bytes("198.95.3.3"), 16));
  assert.ok(prefixMatches(bytes("10.0.0.127"), bytes("10.0.0.0"), 25));
  assert.ok(!prefixMatches(bytes("10.0.0.128"), bytes("10.0.0.0"), 25));
  assert.ok(prefixMatches(bytes("1.2.3.4"), bytes("5.6.7.8"), 0));
  assert.ok(prefixMatches(bytes("2001:db8::1"), bytes("2001:db8::"), 32));
  assert.ok(!prefixMatches(bytes("2001:db9::1"), bytes("2001:db8::"), 32));
  assert.ok(!prefixMatches(bytes("1.2.3.4"), bytes("::1.2.3.4"), 8));
  assert.ok(!prefixMatches(bytes("1.2.3.4"), bytes("1.2.3.4"), 33));
  assert.ok(!prefixMatches(bytes("1.2.3.4"), bytes("1.2.3.4"), -1));
});
