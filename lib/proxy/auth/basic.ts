/**
 * The Basic scheme (RFC 7617). Pure.
 *
 * @module
 */

import { toBase64 } from "../../net/bytes.ts";

/**
 * Builds a Basic `Proxy-Authorization` value from UTF-8 credentials.
 *
 * @param username The user name.
 * @param password The password.
 * @returns e.g. `Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==`.
 */
export function basicAuthorization(username: string, password: string): string {
  const bytes = new TextEncoder().encode(`${username}:${password}`);
  return `Basic ${toBase64(bytes)}`;
}
