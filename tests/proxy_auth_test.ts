import assert from "node:assert/strict";
import {
  AuthFailure,
  ProxyAuthenticator,
} from "../lib/proxy/auth/authenticator.ts";
import { basicAuthorization } from "../lib/proxy/auth/basic.ts";
import { parseChallenges } from "../lib/proxy/auth/challenge.ts";
import {
  digestAuthorization,
  isSupportedDigest,
} from "../lib/proxy/auth/digest.ts";
import {
  fileTime,
  ntlmAuthenticateMessage,
  ntlmNegotiateMessage,
  ntlmV2Responses,
  ntowfv2,
  parseNtlmChallenge,
  splitNtlmUser,
} from "../lib/proxy/auth/ntlm.ts";

const hex = (bytes: Uint8Array) =>
  Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
const fromHex = (text: string) =>
  Uint8Array.from(
    text.replace(/\s/g, "").match(/../g)!,
    (b) => parseInt(b, 16),
  );

Deno.test("challenges: several header lines and several challenges in one line", () => {
  const challenges = parseChallenges([
    'Digest realm="corp, proxy", nonce="abc\\"def", qop="auth,auth-int", algorithm=MD5, stale=TRUE, Basic realm="Squid"',
    "NTLM",
    "Negotiate",
  ]);
  assert.deepEqual(challenges.map((c) => c.scheme), [
    "digest",
    "basic",
    "ntlm",
    "negotiate",
  ]);
  const [digest, basic] = challenges;
  assert.equal(digest.params.get("realm"), "corp, proxy");
  assert.equal(digest.params.get("nonce"), 'abc"def');
  assert.equal(digest.params.get("qop"), "auth,auth-int");
  assert.equal(digest.params.get("algorithm"), "MD5");
  assert.equal(digest.params.get("stale"), "TRUE");
  assert.equal(basic.params.get("realm"), "Squid");
});

Deno.test("challenges: token68, odd spacing and case, empty list elements", () => {
  const [ntlm, basic, digest] = parseChallenges([
    ' ,  NTLM   TlRMTVNTUAACAAAADAAMADgAAAA= ,basic   REALM = "x" ,, DIGEST nonce=n1,realm=""',
  ]);
  assert.equal(ntlm.scheme, "ntlm");
  assert.equal(ntlm.token68, "TlRMTVNTUAACAAAADAAMADgAAAA=");
  assert.equal(basic.schemeName, "basic");
  assert.equal(basic.params.get("realm"), "x");
  assert.equal(digest.params.get("nonce"), "n1");
  assert.equal(digest.params.get("realm"), "");
});

Deno.test("Basic: RFC 7617 example and UTF-8 credentials", () => {
  assert.equal(
    basicAuthorization("Aladdin", "open sesame"),
    "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
  );
  // RFC 7617 §2.1: "test" / "123£" in UTF-8.
  assert.equal(
    basicAuthorization("test", "123\u00a3"),
    "Basic dGVzdDoxMjPCow==",
  );
});

// RFC 7616 §3.9.1.
const RFC7616 = {
  username: "Mufasa",
  password: "Circle of Life",
  method: "GET",
  uri: "/dir/index.html",
  cnonce: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
  nonceCount: 1,
};
const rfcChallenge = (algorithm: string) =>
  parseChallenges([
    `Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=${algorithm}, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"`,
  ])[0];

Deno.test("Digest: RFC 7616 §3.9.1 worked example, MD5 and SHA-256", () => {
  const md5 = digestAuthorization({
    ...RFC7616,
    challenge: rfcChallenge("MD5"),
  });
  assert.equal(
    md5,
    'Digest username="Mufasa", realm="http-auth@example.org", nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", uri="/dir/index.html", algorithm=MD5, response="8ca523f5e9506fed4657c9700eebdbec", qop=auth, nc=00000001, cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"',
  );
  const sha = digestAuthorization({
    ...RFC7616,
    challenge: rfcChallenge("SHA-256"),
  });
  assert.match(
    sha,
    /response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"/,
  );
  assert.match(sha, /algorithm=SHA-256/);
});

Deno.test("Digest: -sess variants, no qop (RFC 2069), unsupported algorithms", () => {
  const sess = digestAuthorization({
    ...RFC7616,
    challenge: rfcChallenge("MD5-sess"),
  });
  assert.match(sess, /algorithm=MD5-sess, response="[0-9a-f]{32}"/);
  assert.doesNotMatch(sess, /8ca523f5e9506fed4657c9700eebdbec/);
  const old = digestAuthorization({
    ...RFC7616,
    challenge: parseChallenges(['Digest realm="r", nonce="n"'])[0],
  });
  assert.doesNotMatch(old, /qop=|nc=|cnonce=/);
  assert.ok(isSupportedDigest(rfcChallenge("SHA-256-sess")));
  assert.ok(!isSupportedDigest(rfcChallenge("SHA-512-256")));
  assert.ok(
    !isSupportedDigest(
      parseChallenges(['Digest nonce="n", qop="auth-int"'])[0],
    ),
  );
});

Deno.test("Digest: a CONNECT uses host:port as the uri", () => {
  const value = digestAuthorization({
    ...RFC7616,
    method: "CONNECT",
    uri: "ssh.example.com:22",
    challenge: rfcChallenge("MD5"),
  });
  assert.match(value, /uri="ssh\.example\.com:22"/);
});

// MS-NLMP §4.2.1 and §4.2.4.
const NLMP_CHALLENGE = fromHex(`
  4e544c4d53535000 02000000 0c000c00 38000000 33828ae2 0123456789abcdef
  0000000000000000 24002400 44000000 060070170000000f 530065007200760065007200
  02000c0044006f006d00610069006e00 01000c0053006500720076006500720000000000`);

Deno.test("NTLM: MS-NLMP §4.2.4 NTLMv2 vectors", () => {
  assert.equal(
    hex(ntowfv2("Password", "User", "Domain")),
    "0c868a403bfd7a93a3001ef22ef02e3f",
  );
  const challenge = parseNtlmChallenge(NLMP_CHALLENGE);
  assert.equal(hex(challenge.serverChallenge), "0123456789abcdef");
  assert.equal(challenge.timestamp, undefined);
  const { lm, nt } = ntlmV2Responses({
    challenge,
    user: { user: "User", domain: "Domain" },
    password: "Password",
    clientChallenge: fromHex("aaaaaaaaaaaaaaaa"),
    now: 0n,
  });
  // §4.2.4.2.1 LMv2 response.
  assert.equal(hex(lm), "86c35097ac9cec102554764a57cccc19aaaaaaaaaaaaaaaa");
  // §4.2.4.2.2 NTProofStr, then the client blob ("temp", §4.2.4.1.3).
  assert.equal(hex(nt.subarray(0, 16)), "68cd0ab851e51c96aabc927bebef6a1c");
  assert.equal(
    hex(nt.subarray(16)),
    "0101000000000000" + "0000000000000000" + "aaaaaaaaaaaaaaaa" + "00000000" +
      "02000c0044006f006d00610069006e0001000c005300650072007600650072000000000000000000",
  );
});

Deno.test("NTLM: a server timestamp is used and the LM response is zeros", () => {
  const withTimestamp = new Uint8Array([...NLMP_CHALLENGE]);
  // Replace the EOL pair by a timestamp pair and EOL, and grow the field.
  const info = fromHex(
    "02000c0044006f006d00610069006e0001000c0053006500720076006500720007000800" +
      "0102030405060708" + "00000000",
  );
  const message = new Uint8Array(0x44 + info.length);
  message.set(withTimestamp.subarray(0, 0x44));
  message.set(info, 0x44);
  new DataView(message.buffer).setUint16(40, info.length, true);
  new DataView(message.buffer).setUint16(42, info.length, true);
  const challenge = parseNtlmChallenge(message);
  assert.equal(challenge.timestamp, 0x0807060504030201n);
  const { lm, nt } = ntlmV2Responses({
    challenge,
    user: { user: "User", domain: "Domain" },
    password: "Password",
    clientChallenge: fromHex("aaaaaaaaaaaaaaaa"),
    now: 99n,
  });
  assert.equal(hex(lm), "00".repeat(24));
  assert.equal(hex(nt.subarray(24, 32)), "0102030405060708");
});

Deno.test("NTLM: negotiate and authenticate messages are well formed", () => {
  const negotiate = ntlmNegotiateMessage();
  assert.equal(new TextDecoder().decode(negotiate.subarray(0, 7)), "NTLMSSP");
  assert.equal(negotiate[8], 1);
  const message = ntlmAuthenticateMessage({
    challenge: parseNtlmChallenge(NLMP_CHALLENGE),
    user: splitNtlmUser("Domain\\User"),
    password: "Password",
    clientChallenge: fromHex("aaaaaaaaaaaaaaaa"),
    now: fileTime(0),
  }, "COMPUTER");
  const view = new DataView(message.buffer);
  assert.equal(view.getUint32(8, true), 3);
  const field = (index: number) => {
    const at = 12 + index * 8;
    const length = view.getUint16(at, true);
    const offset = view.getUint32(at + 4, true);
    return message.subarray(offset, offset + length);
  };
  assert.equal(field(0).length, 24);
  assert.equal(hex(field(1).subarray(0, 16)).length, 32);
  const utf16 = (bytes: Uint8Array) =>
    new TextDecoder("utf-16le").decode(bytes);
  assert.equal(utf16(field(2)), "Domain");
  assert.equal(utf16(field(3)), "User");
  assert.equal(utf16(field(4)), "COMPUTER");
  assert.equal(field(5).length, 0);
  assert.ok(view.getUint32(60, true) & 1, "Unicode negotiated");
});

Deno.test("NTLM: user names with and without a domain", () => {
  assert.deepEqual(splitNtlmUser("CORP\\jane"), {
    domain: "CORP",
    user: "jane",
  });
  assert.deepEqual(splitNtlmUser("jane@corp.example"), {
    domain: "",
    user: "jane@corp.example",
  });
  assert.equal(fileTime(0), 116444736000000000n);
});

Deno.test("auth= forces one scheme: the others a proxy offers are ignored", () => {
  const offers = parseChallenges(['NTLM, Basic realm="corp"']);
  const credentials = { username: "jane", password: "pw" };
  const basic = new ProxyAuthenticator(credentials, "h:22", { only: "basic" });
  assert.equal(basic.answer(offers).scheme, "Basic");
  const free = new ProxyAuthenticator(credentials, "h:22");
  assert.equal(free.answer(offers).scheme, "NTLM");
  const digest = new ProxyAuthenticator(credentials, "h:22", {
    only: "digest",
  });
  assert.throws(
    () => digest.answer(offers),
    (error: AuthFailure) =>
      error.failure === "unsupported-scheme" &&
      /auth=digest allows no other/.test(error.detail),
  );
});
