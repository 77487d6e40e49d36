/**
 * Received bytes between the loop that receives them and the reader that
 * takes them, bounded: the reader waits for bytes, the loop waits for room
 * once the inbox holds its limit. The WebSocket stream's and the poll's
 * inboxes. No I/O of its own.
 *
 * @module
 */

import { ChunkQueue } from "./chunk_queue.ts";

/** Received bytes, a waiting reader, and a receiving loop held at a limit. */
export class Inbox {
  readonly #queue = new ChunkQueue();
  readonly #limit: number;
  readonly #live: () => boolean;
  #wakeReader: (() => void) | undefined;
  #wakeLoop: (() => void) | undefined;

  /**
   * @param limit Bytes at which the receiving loop should wait.
   * @param live Whether more bytes may come; `false` once the stream
   *   ended, and throws the stream's failure. A reader of an empty inbox
   *   asks it each time it wakes.
   */
  constructor(limit: number, live: () => boolean) {
    this.#limit = limit;
    this.#live = live;
  }

  /** Whether the inbox holds its limit: the loop should not receive more. */
  get full(): boolean {
    return this.#queue.bytes >= this.#limit;
  }

  /**
   * Adds received bytes (kept, not copied) and wakes the reader.
   *
   * @param chunk The bytes.
   */
  push(chunk: Uint8Array): void {
    this.#queue.push(chunk);
    this.wakeReader();
  }

  /**
   * Copies received bytes into `buffer`, waiting for some.
   *
   * @param buffer Where to put them.
   * @returns How many; `null` once no more can come.
   */
  async read(buffer: Uint8Array): Promise<number | null> {
    if (!await this.#received()) return null;
    const n = this.#queue.readInto(buffer);
    this.#taken();
    return n;
  }

  /**
   * Returns the next received bytes as they came (or what a
   * {@link read} left of them), handed over: no copy.
   *
   * @returns The bytes; `null` once no more can come.
   */
  async readChunk(): Promise<Uint8Array | null> {
    if (!await this.#received()) return null;
    const chunk = this.#queue.shift()!;
    this.#taken();
    return chunk;
  }

  /** Settles when the reader made room, or on {@link wake}. */
  room(): Promise<void> {
    return new Promise((resolve) => this.#wakeLoop = resolve);
  }

  /** Wakes the reader, to look at the bytes or at `live` again. */
  wakeReader(): void {
    const wake = this.#wakeReader;
    this.#wakeReader = undefined;
    wake?.();
  }

  /** Wakes the reader and the loop: the stream ended or failed. */
  wake(): void {
    this.wakeReader();
    this.#wakeRoom();
  }

  // Waits until bytes wait (true), or no more can come (false).
  async #received(): Promise<boolean> {
    while (this.#queue.bytes === 0) {
      if (!this.#live()) return false;
      await new Promise<void>((resolve) => this.#wakeReader = resolve);
    }
    return true;
  }

  #taken(): void {
    if (!this.full) this.#wakeRoom();
  }

  #wakeRoom(): void {
    const wake = this.#wakeLoop;
    this.#wakeLoop = undefined;
    wake?.();
  }
}
