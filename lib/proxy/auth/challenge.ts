/**
 * `Proxy-Authenticate` challenges (RFC 9110 §11.6.1, §11.7.1): several
 * header lines, several comma-separated challenges in one line, each a
 * scheme followed by a token68 or by `name=value` parameters, where a value
 * may be a quoted string holding commas. Pure functions.
 *
 * @module
 */

/** One challenge from a proxy. */
export interface Challenge {
  /** The scheme, lower-cased: `basic`, `digest`, `ntlm`, `negotiate`, … */
  readonly scheme: string;
  /** The scheme as the proxy wrote it, for messages. */
  readonly schemeName: string;
  /** A token68 (NTLM's type 2 message, for one), if given. */
  readonly token68?: string;
  /** Parameters by lower-cased name, quoted strings unescaped. */
  readonly params: ReadonlyMap<string, string>;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+/;
const TOKEN68 = /^[A-Za-z0-9\-._~+/]+=*/;

/**
 * Parses every challenge in the given `Proxy-Authenticate` header values.
 * Malformed parts are skipped, never fatal.
 *
 * @param values The header values, one per header line.
 * @returns The challenges in the order the proxy sent them.
 *
 * @example
 * ```ts
 * parseChallenges(['Digest realm="a, b", nonce="n", Basic realm="x"']);
 * // [{ scheme: "digest", … }, { scheme: "basic", … }]
 * ```
 */
export function parseChallenges(values: readonly string[]): Challenge[] {
  const challenges: Challenge[] = [];
  for (const value of values) challenges.push(...parseOne(value));
  return challenges;
}

function parseOne(value: string): Challenge[] {
  const challenges: Challenge[] = [];
  let rest = value;
  const skip = (pattern: RegExp) => {
    rest = rest.replace(pattern, "");
  };
  skip(/^[\s,]+/);
  while (rest.length > 0) {
    const scheme = TOKEN.exec(rest)?.[0];
    if (!scheme) {
      // Not a scheme: skip to the next comma and try again.
      skip(/^[^,]*[\s,]*/);
      continue;
    }
    rest = rest.slice(scheme.length);
    const params = new Map<string, string>();
    let token68: string | undefined;
    skip(/^[ \t]+/);
    const t68 = TOKEN68.exec(rest)?.[0];
    if (t68 && /^[ \t]*(,|$)/.test(rest.slice(t68.length)) && !isParam(rest)) {
      token68 = t68;
      rest = rest.slice(t68.length);
      skip(/^[\s,]+/);
    } else {
      // Parameters, until a token that is not followed by "=".
      while (isParam(rest)) {
        const name = TOKEN.exec(rest)![0];
        rest = rest.slice(name.length);
        skip(/^[ \t]*=[ \t]*/);
        let paramValue: string;
        if (rest.startsWith('"')) {
          const match = /^"((?:[^"\\]|\\.)*)"/.exec(rest);
          if (!match) {
            paramValue = rest.slice(1);
            rest = "";
          } else {
            paramValue = match[1].replace(/\\(.)/g, "$1");
            rest = rest.slice(match[0].length);
          }
        } else {
          paramValue = TOKEN.exec(rest)?.[0] ?? "";
          rest = rest.slice(paramValue.length);
        }
        params.set(name.toLowerCase(), paramValue);
        skip(/^[\s,]+/);
      }
    }
    challenges.push({
      scheme: scheme.toLowerCase(),
      schemeName: scheme,
      token68,
      params,
    });
  }
  return challenges;
}

function isParam(text: string): boolean {
  return /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+[ \t]*=(?!=|[ \t]*(,|$))/.test(text) ||
    /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+[ \t]*=[ \t]*"/.test(text);
}
