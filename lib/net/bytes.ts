/**
 * Byte-array helpers shared by the protocol code.
 *
 * @module
 */

import { timingSafeEqual } from "node:crypto";

/**
 * Joins byte arrays into one new array.
 *
 * @param parts The arrays, in order.
 * @returns A new array holding all their bytes.
 *
 * @example
 * ```ts
 * concat(Uint8Array.of(1), Uint8Array.of(2, 3)); // Uint8Array [1, 2, 3]
 * ```
 */
export function concat(...parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/**
 * Compares two secrets in time that does not depend on where they differ
 * (their lengths may show).
 *
 * @param a One byte array.
 * @param b The other.
 * @returns `true` when both hold the same bytes.
 */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Base64 of bytes of any length (spreading a large array into one call
 * would overflow the stack).
 *
 * @param bytes The bytes.
 * @returns Their base64 text.
 */
export function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x2000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x2000));
  }
  return btoa(binary);
}

/**
 * The bytes of base64 text.
 *
 * @param text Base64 text.
 * @returns The bytes.
 * @throws {DOMException} when `text` is not base64.
 */
export function fromBase64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}
