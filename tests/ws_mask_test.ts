import assert from "node:assert/strict";
import { maskBytes } from "../lib/ws/mask.ts";
import { bytes } from "./_util/net.ts";

// RFC 6455 §5.7's masking key.
const RFC_MASK = Uint8Array.of(0x37, 0xfa, 0x21, 0x3d);

/** The RFC's definition, one byte at a time. */
function reference(data: Uint8Array, key: Uint8Array, position: number) {
  return data.map((byte, i) => byte ^ key[(position + i) & 3]);
}

Deno.test("mask: RFC 6455 §5.7's masked Hello", () => {
  const data = bytes("Hello");
  maskBytes(data, RFC_MASK);
  assert.deepEqual(data, Uint8Array.of(0x7f, 0x9f, 0x4d, 0x51, 0x58));
  maskBytes(data, RFC_MASK);
  assert.deepEqual(data, bytes("Hello"));
});

Deno.test("mask: the RFC's Hello continued from a position within the key", () => {
  // "llo" is bytes 2 to 4 of the payload: key bytes 21 3d 37.
  const data = bytes("llo");
  maskBytes(data, RFC_MASK, 2);
  assert.deepEqual(data, Uint8Array.of(0x4d, 0x51, 0x58));
});

Deno.test("mask: equals the byte-wise definition at every alignment, length and position", () => {
  const key = Uint8Array.of(0x01, 0x80, 0xfe, 0x5a);
  const buffer = new Uint8Array(80);
  for (let i = 0; i < buffer.length; i++) buffer[i] = (i * 37 + 11) & 0xff;
  for (let offset = 0; offset < 8; offset++) {
    for (let length = 0; length <= 64; length++) {
      for (let position = 0; position < 8; position++) {
        const copy = buffer.slice();
        const part = copy.subarray(offset, offset + length);
        maskBytes(part, key, position);
        const expected = buffer.slice();
        expected.set(
          reference(buffer.subarray(offset, offset + length), key, position),
          offset,
        );
        // Bytes outside the part are left alone.
        assert.deepEqual(
          copy,
          expected,
          `offset ${offset} length ${length} position ${position}`,
        );
      }
    }
  }
});

Deno.test("mask: a key that is a view into a larger buffer", () => {
  const frame = Uint8Array.of(0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d);
  const data = bytes("Hello, world, masked in words");
  const expected = reference(data, frame.subarray(2, 6), 0);
  maskBytes(data, frame.subarray(2, 6));
  assert.deepEqual(data, expected);
});
