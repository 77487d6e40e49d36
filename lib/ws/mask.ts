/**
 * RFC 6455 §5.3 masking: each payload byte XORed with the masking key's
 * byte at its position modulo 4. The same operation masks and unmasks.
 * Every byte a client sends is masked, so this runs four bytes at a time
 * on the part of the buffer that a `Uint32Array` can view (4-byte
 * aligned), and byte by byte only at the ends. Pure.
 *
 * @module
 */

// Whether a Uint32Array reads memory little-endian (x86, ARM as run).
const LITTLE_ENDIAN = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;

/**
 * Masks (or unmasks) `bytes` in place.
 *
 * @param bytes The payload, or the part of it from `position` on.
 * @param key The 4-byte masking key.
 * @param position Where `bytes` starts in the payload: the key byte of
 *   `bytes[0]` is `key[position % 4]`. @default 0
 *
 * @example
 * ```ts
 * // RFC 6455 §5.7: "Hello" masked with 37 fa 21 3d
 * const bytes = new TextEncoder().encode("Hello");
 * maskBytes(bytes, Uint8Array.of(0x37, 0xfa, 0x21, 0x3d));
 * // bytes is now 7f 9f 4d 51 58
 * ```
 */
export function maskBytes(
  bytes: Uint8Array,
  key: Uint8Array,
  position = 0,
): void {
  const length = bytes.length;
  // Bytes before the first 4-byte boundary of the underlying buffer.
  const head = Math.min(length, (4 - (bytes.byteOffset & 3)) & 3);
  for (let i = 0; i < head; i++) bytes[i] ^= key[(position + i) & 3];
  const words = (length - head) >>> 2;
  if (words > 0) {
    // The key as one word, rotated to the key byte of the first aligned
    // byte, in the byte order the view reads memory in.
    const start = position + head;
    const k0 = key[start & 3], k1 = key[(start + 1) & 3];
    const k2 = key[(start + 2) & 3], k3 = key[(start + 3) & 3];
    const word = LITTLE_ENDIAN
      ? (k0 | (k1 << 8) | (k2 << 16) | (k3 << 24))
      : ((k0 << 24) | (k1 << 16) | (k2 << 8) | k3);
    const view = new Uint32Array(
      bytes.buffer,
      bytes.byteOffset + head,
      words,
    );
    for (let i = 0; i < words; i++) view[i] ^= word;
  }
  for (let i = head + words * 4; i < length; i++) {
    bytes[i] ^= key[(position + i) & 3];
  }
}
