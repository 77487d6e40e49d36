/**
 * The bearer tokens `serve` accepts: the tokens file (`NAME TOKEN` per
 * line, `#` comments) parsed into a set that checks a presented token in
 * constant time and answers with the token's NAME, which is what the log
 * shows. Pure: the caller reads the file.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { sameBytes } from "../net/bytes.ts";
import { ConfigError } from "../errors.ts";

/** The shortest token accepted: shorter ones can be guessed. */
export const MIN_TOKEN_LENGTH = 16;

/** The longest token accepted, so that a header cannot make us hash megabytes. */
export const MAX_TOKEN_LENGTH = 512;

/** Most tokens one file may hold; every check compares against all of them. */
export const MAX_TOKENS = 10_000;

// A token is what RFC 6750's b64token allows: it travels in a header.
const TOKEN_CHARS = /^[A-Za-z0-9\-._~+/]+=*$/;
const NAME_CHARS = /^[A-Za-z0-9._@-]{1,64}$/;

/** One token of the file: its name (for the log) and the secret's digest. */
export interface NamedToken {
  /** The name the log and /status show. */
  readonly name: string;
  /** SHA-256 of the token, compared instead of the token itself. */
  readonly digest: Uint8Array;
  /** The 1-based line it was read from. */
  readonly line: number;
}

/** What {@link parseTokens} found. */
export interface ParsedTokens {
  /** The tokens, in file order. */
  readonly tokens: NamedToken[];
  /** Every mistake, located. */
  readonly errors: ConfigError[];
}

function digestOf(token: string): Uint8Array {
  return new Uint8Array(createHash("sha256").update(token).digest());
}

/**
 * Parses a tokens file: `NAME TOKEN` per line, blank lines and `#` comments
 * ignored. A token shorter than {@link MIN_TOKEN_LENGTH}, a name or token
 * used twice, or a line with other than two fields is an error at its
 * column; no error repeats the token itself.
 *
 * @param text The file's contents.
 * @param file The path, for the errors' `file:line:column`.
 * @returns The tokens and the errors.
 *
 * @example
 * ```ts
 * parseTokens("alice 0123456789abcdef0123\n", "tokens.txt").tokens[0].name; // "alice"
 * ```
 */
export function parseTokens(text: string, file: string): ParsedTokens {
  const tokens: NamedToken[] = [];
  const errors: ConfigError[] = [];
  const names = new Map<string, number>();
  const digests = new Map<string, number>();
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = index + 1;
    const body = raw.replace(/^\s*#.*$/, "");
    const fields = [...body.matchAll(/\S+/g)];
    if (fields.length === 0) return;
    const at = (field: RegExpMatchArray, message: string) =>
      errors.push(new ConfigError(file, line, field.index! + 1, message));
    if (fields.length !== 2) {
      at(
        fields[Math.min(fields.length - 1, 2)],
        fields.length === 1
          ? "expected NAME TOKEN: this line has a name and no token"
          : "expected NAME TOKEN: this line has more than two fields",
      );
      return;
    }
    const [name, token] = fields;
    if (!NAME_CHARS.test(name[0])) {
      at(
        name,
        "a token's name is 1 to 64 letters, digits, '.', '_', '@' or '-'",
      );
      return;
    }
    if (token[0].length < MIN_TOKEN_LENGTH) {
      at(
        token,
        `the token of "${name[0]}" has ${
          token[0].length
        } characters; use at least ${MIN_TOKEN_LENGTH} (e.g. openssl rand -hex 24)`,
      );
      return;
    }
    if (token[0].length > MAX_TOKEN_LENGTH || !TOKEN_CHARS.test(token[0])) {
      at(
        token,
        `the token of "${
          name[0]
        }" must be at most ${MAX_TOKEN_LENGTH} characters of A-Z a-z 0-9 - . _ ~ + / (then = padding)`,
      );
      return;
    }
    const earlierName = names.get(name[0]);
    if (earlierName !== undefined) {
      at(name, `the name "${name[0]}" is used on line ${earlierName} already`);
      return;
    }
    const digest = digestOf(token[0]);
    const key = digest.join(",");
    const earlierToken = digests.get(key);
    if (earlierToken !== undefined) {
      at(
        token,
        `the token of "${
          name[0]
        }" is the same as on line ${earlierToken}: give each its own`,
      );
      return;
    }
    if (tokens.length === MAX_TOKENS) {
      at(name, `a tokens file holds at most ${MAX_TOKENS} tokens`);
      return;
    }
    names.set(name[0], line);
    digests.set(key, line);
    tokens.push({ name: name[0], digest, line });
  });
  return { tokens, errors };
}

/**
 * The token of an `Authorization: Bearer …` header.
 *
 * @param header The header's value, or `null` when absent.
 * @returns The token, or `undefined` when the header is absent, is not
 *   Bearer, or is longer than a token may be.
 */
export function bearerToken(header: string | null): string | undefined {
  if (header === null || header.length > MAX_TOKEN_LENGTH + 16) {
    return undefined;
  }
  const match = /^Bearer +(\S+)\s*$/i.exec(header);
  return match?.[1];
}

/**
 * Finds the token that `presented` is, comparing digests with every token
 * (not stopping at a match), so the time taken does not tell which token
 * or how much of it matched.
 *
 * @param tokens The accepted tokens.
 * @param presented The token a client sent.
 * @returns The token's name, or `undefined` when none matches.
 */
export function matchToken(
  tokens: readonly NamedToken[],
  presented: string,
): string | undefined {
  const digest = digestOf(presented);
  let found: string | undefined;
  for (const token of tokens) {
    if (sameBytes(token.digest, digest) && found === undefined) {
      found = token.name;
    }
  }
  return found;
}
