/**
 * One field of a config line, the error located at it, and the readers for
 * the host and port fields that every form of entry shares. Pure.
 *
 * @module
 */

import { isHostName, isIPv6, parsePort } from "../net/address.ts";

/** A field as written, and where it starts in its line. */
export interface Token {
  /** The field's text. */
  readonly text: string;
  /** 1-based column of its first character. */
  readonly column: number;
}

/**
 * A mistake at a column of the line being read. The config grammar adds the
 * file and line (a `ConfigError`); the command line drops the column.
 */
export class EntryError extends Error {
  /** 1-based column of the offending text. */
  readonly column: number;

  /**
   * Locates a message at a column.
   *
   * @param column 1-based column of the offending text.
   * @param message What is wrong and what to write instead.
   */
  constructor(column: number, message: string) {
    super(message);
    this.name = "EntryError";
    this.column = column;
  }
}

/**
 * Reads a host field: a name, an IPv4 address, or an IPv6 address with or
 * without brackets.
 *
 * @param token The field.
 * @param what The field's name for the message, e.g. `proxy host`.
 * @returns The host; an IPv6 address lower-cased and without brackets.
 * @throws {EntryError} for anything that is not a host.
 */
export function parseHostField(token: Token, what: string): string {
  const { text, column } = token;
  const bracketed = /^\[(.*)\]$/.exec(text);
  const host = bracketed ? bracketed[1] : text;
  if (bracketed || host.includes(":")) {
    if (isIPv6(host)) return host.toLowerCase();
    throw new EntryError(
      column,
      `invalid ${what} "${text}": not an IPv6 address`,
    );
  }
  if (isHostName(host)) return host;
  throw new EntryError(
    column,
    `invalid ${what} "${text}": use a host name (letters, digits, '-', '.') or an IP address`,
  );
}

/**
 * Reads a port field.
 *
 * @param token The field.
 * @param what The field's name for the message, e.g. `destination port`.
 * @returns The port, 1–65535.
 * @throws {EntryError} for anything else.
 */
export function parsePortField(token: Token, what: string): number {
  const port = parsePort(token.text);
  if (port === undefined) {
    throw new EntryError(
      token.column,
      `invalid ${what} "${token.text}": use a number from 1 to 65535`,
    );
  }
  return port;
}
