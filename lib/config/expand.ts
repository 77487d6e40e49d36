/**
 * `${NAME}` in a config field: replaced by the environment variable NAME
 * when the config is read. Pure: the variables come from an
 * {@link Environment}.
 *
 * @module
 */

import { errorMessage } from "../errors.ts";
import { EntryError, type Token } from "./field.ts";

/** Where `${NAME}` finds its values. */
export interface Environment {
  /** The value of an environment variable, or `undefined` when unset. */
  env(name: string): string | undefined;
}

/** No variables at all: every `${NAME}` is reported as unset. */
export const NO_ENVIRONMENT: Environment = { env: () => undefined };

const REFERENCE = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/**
 * Replaces every `${NAME}` in a field with the variable's value. With
 * `decode`, the text around references is percent-decoded (a URL's user
 * name or password) while the values are taken as they are.
 *
 * @param token The field as written.
 * @param environment The variables.
 * @param decode Whether to percent-decode the literal text.
 * @returns The field with the values in place, at the same column.
 * @throws {EntryError} at a variable that is unset or cannot be read.
 * @throws {URIError} when `decode` meets a malformed `%` sequence.
 *
 * @example
 * ```ts
 * const environment = { env: () => "proxy.corp" };
 * expandVariables({ text: "${HOST}", column: 7 }, environment).text; // "proxy.corp"
 * ```
 */
export function expandVariables(
  token: Token,
  environment: Environment,
  decode = false,
): Token {
  let text = "";
  let last = 0;
  for (const match of token.text.matchAll(REFERENCE)) {
    text += literal(token.text.slice(last, match.index), decode);
    text += variable(match[1], token.column + match.index, environment);
    last = match.index + match[0].length;
  }
  text += literal(token.text.slice(last), decode);
  return { text, column: token.column };
}

function literal(text: string, decode: boolean): string {
  return decode ? decodeURIComponent(text) : text;
}

function variable(
  name: string,
  column: number,
  environment: Environment,
): string {
  let value: string | undefined;
  try {
    value = environment.env(name);
  } catch (error) {
    throw new EntryError(
      column,
      `cannot read environment variable ${name}: ${errorMessage(error)}`,
    );
  }
  if (value === undefined) {
    throw new EntryError(
      column,
      `environment variable ${name} is not set: set it, or write the value here`,
    );
  }
  return value;
}
