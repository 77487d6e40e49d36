/**
 * Answers a proxy's 407 challenges: picks the strongest scheme the tool
 * supports (Negotiate > NTLM > Digest > Basic), carries NTLM's three
 * messages, Negotiate's context and Digest's stale nonces, and knows when
 * credentials were rejected. Negotiate needs no password: it is tried
 * whenever offered, and when no Kerberos token can be made (no ticket,
 * expired, no library) the next offered scheme that has credentials is
 * used instead, the reason kept in {@link ProxyAuthenticator.kerberosProblem}.
 * Pure: randomness, the clock and Kerberos are injected.
 *
 * ```
 * answer(407) ─┬─ NTLM pending:      authenticate message (same connection)
 *              ├─ Negotiate sent:    continue with the proxy's token, or rejected
 *              ├─ Negotiate offered: KerberosClient.start(HTTP@proxy).step()
 *              └─ NTLM | Digest | Basic, with the configured credentials
 * ```
 *
 * @module
 */

import { KerberosError, type ProxyAuthFailure } from "../../errors.ts";
import { fromBase64, toBase64 } from "../../net/bytes.ts";
import { basicAuthorization } from "./basic.ts";
import type { Challenge } from "./challenge.ts";
import { digestAuthorization, isSupportedDigest } from "./digest.ts";
import { systemKerberos } from "./gssapi.ts";
import {
  type KerberosClient,
  negotiateAuthorization,
  type NegotiateContext,
  negotiateToken,
  servicePrincipal,
} from "./negotiate.ts";
import {
  fileTime,
  ntlmAuthenticateMessage,
  ntlmNegotiateMessage,
  parseNtlmChallenge,
  splitNtlmUser,
} from "./ntlm.ts";

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
  /**
   * The scheme used, as a person writes it: `Negotiate`, `NTLM`, `Digest`,
   * `Basic`.
   */
  readonly scheme: string;
  /** Whether the answer must go on the connection that carried the challenge. */
  readonly sameConnection: boolean;
  /** For Negotiate, whose ticket for which service: `jane@CORP for HTTP@proxy`. */
  readonly detail?: string;
}

/** Why no answer can be given; the caller turns it into a ProxyAuthError. */
export class AuthFailure extends Error {
  /**
   * @param failure What went wrong.
   * @param detail The schemes offered or tried, for the message.
   * @param options The cause: the {@link KerberosError} when Negotiate was
   *   offered and could not be used.
   */
  constructor(
    readonly failure: ProxyAuthFailure,
    readonly detail: string,
    options?: ErrorOptions,
  ) {
    super(`${failure}: ${detail}`, options);
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
  negotiate: "Negotiate",
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
  /**
   * The only scheme to answer with (`auth=`); the others a proxy offers
   * are ignored.
   * @default any supported scheme, the strongest first
   */
  readonly only?: "negotiate" | "ntlm" | "digest" | "basic";
  /**
   * Open with NTLM's first message, before any challenge: the proxy took
   * NTLM last time, so its first 407 would only say so again. When it
   * asks for something else after all, the challenge is answered as usual.
   * @default false
   */
  readonly expectNtlm?: boolean;
  /** Randomness and time. @default the system's */
  readonly env?: AuthEnvironment;
  /**
   * The proxy's host as written in the config: Negotiate asks for a ticket
   * for `HTTP@<proxyHost>`. Without it (nor `servicePrincipal`), Negotiate
   * is not tried.
   * @default undefined
   */
  readonly proxyHost?: string;
  /** The service principal, when it is not `HTTP@<proxyHost>`. @default undefined */
  readonly servicePrincipal?: string;
  /**
   * Makes Negotiate tokens.
   * @default GSSAPI through FFI, opened when a proxy first offers Negotiate
   */
  readonly kerberos?: KerberosClient;
}

/**
 * Whether a challenge is one that configured credentials can answer.
 *
 * @param challenge A challenge.
 * @returns `true` for NTLM, Basic and the Digest algorithms supported.
 */
function needsPassword(challenge: Challenge): boolean {
  return challenge.scheme === "ntlm" || challenge.scheme === "basic" ||
    (challenge.scheme === "digest" && isSupportedDigest(challenge));
}

/**
 * One request's authentication state (a CONNECT, or a plain request).
 * Disposing it releases a Negotiate context still open.
 */
export class ProxyAuthenticator implements Disposable {
  #credentials?: Credentials;
  #uri: string;
  #method: string;
  #env: AuthEnvironment;
  #spn?: string;
  #kerberos: KerberosClient;
  #context?: NegotiateContext;
  // Negotiate is tried once per request: untried, then sent, then done.
  #negotiate: "untried" | "sent" | "done" = "untried";
  #kerberosProblem?: KerberosError;
  #tried = new Set<string>();
  #only?: ProxyAuthenticatorOptions["only"];
  #ntlmPending = false;
  // Set while the NTLM opening was sent on a guess (expectNtlm).
  #ntlmGuessed = false;
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
    this.#only = options.only;
    this.#env = options.env ?? SYSTEM;
    this.#spn = options.servicePrincipal ??
      (options.proxyHost === undefined
        ? undefined
        : servicePrincipal(options.proxyHost));
    this.#kerberos = options.kerberos ?? systemKerberos;
    if (options.expectNtlm && credentials) {
      this.#ntlmPending = true;
      this.#ntlmGuessed = true;
      this.#first = {
        authorization: `NTLM ${toBase64(ntlmNegotiateMessage())}`,
        scheme: "NTLM",
        sameConnection: false,
      };
    } else if (options.preemptiveBasic && credentials) {
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
   * Why Negotiate was offered but not used (no ticket, expired, no
   * library, rejected), for the log; `undefined` when it was not offered,
   * or worked.
   */
  get kerberosProblem(): KerberosError | undefined {
    return this.#kerberosProblem;
  }

  /** Releases the Negotiate context, if one is open. */
  [Symbol.dispose](): void {
    this.#releaseContext();
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
    // Negotiate, like NTLM, authenticated the connection: its context is done.
    this.#releaseContext();
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

  #answer(offers: readonly Challenge[]): AuthAnswer {
    const offered = offers.map((c) => c.schemeName).join(", ") || "none";
    const only = this.#only;
    const challenges = only ? offers.filter((c) => c.scheme === only) : offers;
    if (only && challenges.length === 0) {
      throw new AuthFailure(
        "unsupported-scheme",
        `${offered}; auth=${only} allows no other`,
      );
    }
    const credentials = this.#credentials;
    const guessed = this.#ntlmGuessed;
    this.#ntlmGuessed = false;
    if (this.#ntlmPending && credentials) {
      this.#ntlmPending = false;
      const token = challenges.find((c) => c.scheme === "ntlm")?.token68;
      if (token) return this.#ntlmAuthenticate(credentials, token);
      // A guess the proxy did not take up: answer its challenges afresh.
      if (!guessed) {
        throw new AuthFailure("handshake-failed", "NTLM handshake");
      }
    }
    const negotiate = challenges.find((c) => c.scheme === "negotiate");
    if (this.#negotiate === "sent") {
      const next = this.#continueNegotiate(negotiate);
      if (next) return next;
    } else if (
      negotiate && this.#negotiate === "untried" && this.#spn !== undefined
    ) {
      const first = this.#startNegotiate(this.#spn);
      if (first) return first;
    }
    const problem = this.#kerberosProblem;
    const cause = problem && { cause: problem };
    const usable = challenges.filter(needsPassword);
    if (!credentials) {
      if (usable.length === 0 && problem?.problem === "rejected") {
        throw new AuthFailure("credentials-rejected", "Negotiate", cause);
      }
      if (usable.length === 0 && problem) {
        throw new AuthFailure("negotiate-failed", offered, cause);
      }
      throw new AuthFailure("credentials-needed", offered, cause);
    }
    if (usable.length === 0) {
      if (problem?.problem === "rejected") {
        throw new AuthFailure("credentials-rejected", "Negotiate", cause);
      }
      if (problem) throw new AuthFailure("negotiate-failed", offered, cause);
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
    this.#releaseContext();
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

  /** The first Negotiate token, or `undefined` (the problem kept) when none can be made. */
  #startNegotiate(spn: string): AuthAnswer | undefined {
    this.#negotiate = "done";
    let context: NegotiateContext | undefined;
    try {
      context = this.#kerberos.start(spn);
      const { token } = context.step();
      if (token.length === 0) throw new KerberosError("failed", { spn });
      this.#negotiate = "sent";
      this.#context = context;
      context = undefined;
      return this.#negotiateAnswer(token, false);
    } catch (error) {
      if (!(error instanceof KerberosError)) throw error;
      this.#kerberosProblem = error;
      return undefined;
    } finally {
      context?.[Symbol.dispose]();
    }
  }

  /**
   * The proxy answered a Negotiate token with a 407: continue the context
   * with its token, if it sent one and the context awaits one; anything
   * else means the ticket was not accepted.
   */
  #continueNegotiate(challenge?: Challenge): AuthAnswer | undefined {
    const context = this.#context;
    const token = challenge && negotiateToken(challenge);
    this.#context = undefined;
    this.#negotiate = "done";
    try {
      if (context && token) {
        const step = context.step(token);
        if (step.token.length > 0) {
          this.#negotiate = "sent";
          if (!step.complete) this.#context = context;
          return this.#negotiateAnswer(step.token, true, context.principal);
        }
      }
      this.#kerberosProblem = new KerberosError("rejected", { spn: this.#spn });
    } catch (error) {
      if (!(error instanceof KerberosError)) throw error;
      this.#kerberosProblem = error;
    } finally {
      if (this.#context !== context) context?.[Symbol.dispose]();
    }
    return undefined;
  }

  #negotiateAnswer(
    token: Uint8Array,
    sameConnection: boolean,
    principal = this.#context?.principal,
  ): AuthAnswer {
    return {
      authorization: negotiateAuthorization(token),
      scheme: "Negotiate",
      sameConnection,
      detail: `${principal ?? "Kerberos ticket"} for ${this.#spn}`,
    };
  }

  #releaseContext(): void {
    const context = this.#context;
    this.#context = undefined;
    context?.[Symbol.dispose]();
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

function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
