/**
 * Answers a proxy's 407 challenges: picks the strongest scheme the tool
 * supports (NTLM > Digest > Basic; Negotiate is skipped), carries NTLM's
 * three messages and Digest's stale nonces, and knows when credentials were
 * rejected. Pure: randomness and the clock are injected.
 *
 * @module
 */

import { basicAuthorization } from "./basic.ts";
import type { Challenge } from "./challenge.ts";
import { digestAuthorization, isSupportedDigest } from "./digest.ts";
import {
  fileTime,
  ntlmAuthenticateMessage,
  ntlmNegotiateMessage,
  parseNtlmChallenge,
  splitNtlmUser,
} from "./ntlm.ts";
import type { ProxyAuthFailure } from "../../errors.ts";

/** A user name and password for a proxy. */
export interface Credentials {
  /** The user name; `DOMAIN\user` for NTLM with a domain. */
  readonly username: string;
  /** The password. */
  readonly password: string;
}

/** What to send next. */
export interface AuthAnswer {
  /** The `Proxy-Authorization` value. */
  readonly authorization: string;
  /** The scheme used, as a person writes it: `Basic`, `Digest`, `NTLM`. */
  readonly scheme: string;
  /** Whether the answer must go on the connection that carried the challenge. */
  readonly sameConnection: boolean;
}

/** Why no answer can be given; the caller turns it into a ProxyAuthError. */
export class AuthFailure extends Error {
  /**
   * @param failure What went wrong.
   * @param detail The schemes offered or tried, for the message.
   */
  constructor(readonly failure: ProxyAuthFailure, readonly detail: string) {
    super(`${failure}: ${detail}`);
    this.name = "AuthFailure";
  }
}

/** Injected sources of randomness and time, fixed in tests. */
export interface AuthEnvironment {
  /** `n` random bytes. */
  randomBytes(n: number): Uint8Array;
  /** Milliseconds since the Unix epoch. */
  now(): number;
}

const SYSTEM: AuthEnvironment = {
  randomBytes: (n) => crypto.getRandomValues(new Uint8Array(n)),
  now: () => Date.now(),
};

const SCHEME_NAMES: Record<string, string> = {
  ntlm: "NTLM",
  digest: "Digest",
  basic: "Basic",
};

/** Options of a {@link ProxyAuthenticator}. */
export interface ProxyAuthenticatorOptions {
  /** The request's method, which Digest signs. @default "CONNECT" */
  readonly method?: string;
  /** Send Basic credentials before any challenge. @default false */
  readonly preemptiveBasic?: boolean;
  /** Randomness and time. @default the system's */
  readonly env?: AuthEnvironment;
}

/** One request's authentication state (a CONNECT, or a plain request). */
export class ProxyAuthenticator {
  #credentials?: Credentials;
  #uri: string;
  #method: string;
  #env: AuthEnvironment;
  #tried = new Set<string>();
  #ntlmPending = false;
  #staleRetried = false;
  #first?: AuthAnswer;
  #digest?: Challenge;
  #nonceCount = 0;
  #last?: AuthAnswer;

  /**
   * @param credentials The proxy's credentials, if configured.
   * @param uri The request target: `host:port` for CONNECT, the URL else.
   * @param options The method, Basic before any challenge, randomness/time.
   */
  constructor(
    credentials: Credentials | undefined,
    uri: string,
    options: ProxyAuthenticatorOptions = {},
  ) {
    this.#credentials = credentials;
    this.#uri = uri;
    this.#method = options.method ?? "CONNECT";
    this.#env = options.env ?? SYSTEM;
    if (options.preemptiveBasic && credentials) {
      this.#tried.add("basic");
      this.#first = {
        authorization: basicAuthorization(
          credentials.username,
          credentials.password,
        ),
        scheme: "Basic",
        sameConnection: false,
      };
    }
  }

  /** The answer to send with the first request, before any challenge. */
  get first(): AuthAnswer | undefined {
    return this.#first;
  }

  /**
   * What the next request on a connection this authenticator has
   * authenticated carries: Basic again, Digest with the same nonce and the
   * next nonce count, nothing for NTLM (it authenticates the connection).
   *
   * @param method The next request's method.
   * @param uri The next request's target.
   * @returns The `Proxy-Authorization` value, or `undefined`.
   */
  next(method: string, uri: string): string | undefined {
    const last = this.#last ?? this.#first;
    if (last?.scheme === "Basic") return last.authorization;
    if (last?.scheme !== "Digest" || !this.#digest || !this.#credentials) {
      return undefined;
    }
    return digestAuthorization({
      challenge: this.#digest,
      ...this.#credentials,
      method,
      uri,
      cnonce: toHex(this.#env.randomBytes(16)),
      nonceCount: ++this.#nonceCount,
    });
  }

  /**
   * Answers a 407's challenges.
   *
   * @param challenges Every challenge of the 407.
   * @returns What to send with the next request.
   * @throws {AuthFailure} when there is nothing (more) to try.
   */
  answer(challenges: readonly Challenge[]): AuthAnswer {
    this.#last = this.#answer(challenges);
    return this.#last;
  }

  #answer(challenges: readonly Challenge[]): AuthAnswer {
    const offered = challenges.map((c) => c.schemeName).join(", ") || "none";
    const credentials = this.#credentials;
    if (!credentials) throw new AuthFailure("credentials-needed", offered);
    if (this.#ntlmPending) {
      this.#ntlmPending = false;
      const token = challenges.find((c) => c.scheme === "ntlm")?.token68;
      if (!token) throw new AuthFailure("handshake-failed", "NTLM handshake");
      return this.#ntlmAuthenticate(credentials, token);
    }
    const usable = challenges.filter((c) =>
      c.scheme === "ntlm" || c.scheme === "basic" ||
      (c.scheme === "digest" && isSupportedDigest(c))
    );
    if (usable.length === 0) {
      throw new AuthFailure("unsupported-scheme", offered);
    }
    const rank = (c: Challenge) =>
      ["ntlm", "digest", "basic"].indexOf(c.scheme);
    const best = usable.toSorted((a, b) => rank(a) - rank(b))[0];
    const stale = best.scheme === "digest" &&
      best.params.get("stale")?.toLowerCase() === "true" && !this.#staleRetried;
    if (this.#tried.has(best.scheme) && !stale) {
      throw new AuthFailure("credentials-rejected", SCHEME_NAMES[best.scheme]);
    }
    if (stale && this.#tried.has("digest")) this.#staleRetried = true;
    this.#tried.add(best.scheme);
    switch (best.scheme) {
      case "ntlm":
        this.#ntlmPending = true;
        return {
          authorization: `NTLM ${toBase64(ntlmNegotiateMessage())}`,
          scheme: "NTLM",
          sameConnection: false,
        };
      case "digest":
        this.#digest = best;
        this.#nonceCount = 1;
        return {
          authorization: digestAuthorization({
            challenge: best,
            ...credentials,
            method: this.#method,
            uri: this.#uri,
            cnonce: toHex(this.#env.randomBytes(16)),
            nonceCount: 1,
          }),
          scheme: "Digest",
          sameConnection: false,
        };
      default:
        return {
          authorization: basicAuthorization(
            credentials.username,
            credentials.password,
          ),
          scheme: "Basic",
          sameConnection: false,
        };
    }
  }

  #ntlmAuthenticate(credentials: Credentials, token: string): AuthAnswer {
    let challenge;
    try {
      challenge = parseNtlmChallenge(fromBase64(token));
    } catch {
      throw new AuthFailure("handshake-failed", "NTLM handshake");
    }
    const message = ntlmAuthenticateMessage({
      challenge,
      user: splitNtlmUser(credentials.username),
      password: credentials.password,
      clientChallenge: this.#env.randomBytes(8),
      now: fileTime(this.#env.now()),
    });
    return {
      authorization: `NTLM ${toBase64(message)}`,
      scheme: "NTLM",
      sameConnection: true,
    };
  }
}

function toBase64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}

function fromBase64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
