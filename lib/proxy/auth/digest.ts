/**
 * The Digest scheme (RFC 7616): MD5, MD5-sess, SHA-256 and SHA-256-sess,
 * with `qop=auth` or without qop (RFC 2069). Pure.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { ProxyProtocolError } from "../../errors.ts";
import type { Challenge } from "./challenge.ts";

const HASHES: Record<string, string> = {
  "md5": "md5",
  "md5-sess": "md5",
  "sha-256": "sha256",
  "sha-256-sess": "sha256",
};

/** Everything a Digest response is computed from. */
export interface DigestInput {
  /** The proxy's Digest challenge. */
  readonly challenge: Challenge;
  /** The user name. */
  readonly username: string;
  /** The password. */
  readonly password: string;
  /** The request method: `CONNECT` for a tunnel. */
  readonly method: string;
  /** The request target: `host:port` for CONNECT. */
  readonly uri: string;
  /** A fresh client nonce. */
  readonly cnonce: string;
  /** How many requests used this nonce, this one included (1 first). */
  readonly nonceCount: number;
}

/**
 * Tells whether a Digest challenge uses an algorithm this tool computes.
 *
 * @param challenge A Digest challenge.
 * @returns `true` for MD5, MD5-sess, SHA-256 and SHA-256-sess.
 */
export function isSupportedDigest(challenge: Challenge): boolean {
  const algorithm = (challenge.params.get("algorithm") ?? "MD5").toLowerCase();
  const qop = challenge.params.get("qop");
  return algorithm in HASHES &&
    (qop === undefined || qop.split(",").some((q) => q.trim() === "auth"));
}

/**
 * Computes a Digest `Proxy-Authorization` value.
 *
 * @param input The challenge, credentials, request and client nonce.
 * @returns The header value, starting `Digest username="…"`.
 * @throws {ProxyProtocolError} when the challenge lacks a nonce, or a value
 *   of it holds a control character (it would end up in a request header).
 * @throws {Error} for an unsupported algorithm (check with
 *   {@link isSupportedDigest}), or a user name with a control character.
 */
export function digestAuthorization(input: DigestInput): string {
  const { challenge, username, password, method, uri, cnonce } = input;
  const realm = challenge.params.get("realm") ?? "";
  const nonce = challenge.params.get("nonce");
  if (nonce === undefined) {
    throw new ProxyProtocolError(
      "the proxy sent a Digest challenge without a nonce",
    );
  }
  for (const name of ["realm", "nonce", "opaque", "algorithm", "qop"]) {
    if (CONTROL.test(challenge.params.get(name) ?? "")) {
      throw new ProxyProtocolError(
        `the proxy's Digest challenge has a control character in its ${name}`,
      );
    }
  }
  if (CONTROL.test(username)) {
    throw new Error("the user name holds a control character");
  }
  const algorithmName = challenge.params.get("algorithm") ?? "MD5";
  const hashName = HASHES[algorithmName.toLowerCase()];
  if (hashName === undefined) {
    throw new Error(`unsupported Digest algorithm ${algorithmName}`);
  }
  const h = (text: string) =>
    createHash(hashName).update(text, "utf8").digest("hex");
  const qop = challenge.params.get("qop")?.split(",").map((q) => q.trim())
      .includes("auth")
    ? "auth"
    : undefined;
  const nc = input.nonceCount.toString(16).padStart(8, "0");
  let ha1 = h(`${username}:${realm}:${password}`);
  if (algorithmName.toLowerCase().endsWith("-sess")) {
    ha1 = h(`${ha1}:${nonce}:${cnonce}`);
  }
  const ha2 = h(`${method}:${uri}`);
  const response = qop
    ? h(`${ha1}:${nonce}:${nc}:${cnonce}:${qop}:${ha2}`)
    : h(`${ha1}:${nonce}:${ha2}`);
  const fields = [
    `username=${quote(username)}`,
    `realm=${quote(realm)}`,
    `nonce=${quote(nonce)}`,
    `uri=${quote(uri)}`,
    `algorithm=${algorithmName}`,
    `response=${quote(response)}`,
  ];
  if (qop) fields.push(`qop=${qop}`, `nc=${nc}`, `cnonce=${quote(cnonce)}`);
  const opaque = challenge.params.get("opaque");
  if (opaque !== undefined) fields.push(`opaque=${quote(opaque)}`);
  return `Digest ${fields.join(", ")}`;
}

// deno-lint-ignore no-control-regex -- control characters are what is refused
const CONTROL = /[\x00-\x1f\x7f]/;

function quote(text: string): string {
  return `"${text.replace(/["\\]/g, "\\$&")}"`;
}
