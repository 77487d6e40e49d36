/**
 * Failed authentications counted per source address: after too many in a
 * window the source is refused (429) for a while without its token being
 * looked at. The table is bounded, so a flood of sources costs memory up
 * to a limit and no more. Pure: the clock is passed in.
 *
 * @module
 */

import { ipBytes, ipText } from "../net/address.ts";

/** Options of {@link FailureLimiter}. */
export interface FailureLimiterOptions {
  /** Failures within the window that block a source. @default 10 */
  readonly maxFailures?: number;
  /** The window failures are counted in. @default 60 s */
  readonly windowMs?: number;
  /** How long a blocked source stays blocked. @default 60 s */
  readonly blockMs?: number;
  /** Most sources remembered at once. @default 10000 */
  readonly maxSources?: number;
  /** The clock, in milliseconds. @default Date.now */
  readonly now?: () => number;
}

interface SourceState {
  windowStart: number;
  failures: number;
  blockedUntil: number;
}

/** Counts failed authentications per source and says when to refuse one. */
export class FailureLimiter {
  readonly #maxFailures: number;
  readonly #windowMs: number;
  readonly #blockMs: number;
  readonly #maxSources: number;
  readonly #now: () => number;
  readonly #sources = new Map<string, SourceState>();

  /** @param options Limits and clock. */
  constructor(options: FailureLimiterOptions = {}) {
    this.#maxFailures = options.maxFailures ?? 10;
    this.#windowMs = options.windowMs ?? 60_000;
    this.#blockMs = options.blockMs ?? 60_000;
    this.#maxSources = options.maxSources ?? 10_000;
    this.#now = options.now ?? Date.now;
  }

  /** How many sources are remembered. */
  get size(): number {
    return this.#sources.size;
  }

  /**
   * Whether `source` is blocked now.
   *
   * @param source A key from {@link sourceKey}.
   * @returns `true` while the source must get 429.
   */
  blocked(source: string): boolean {
    const state = this.#sources.get(source);
    return state !== undefined && state.blockedUntil > this.#now();
  }

  /**
   * Counts a failed authentication of `source`.
   *
   * @param source A key from {@link sourceKey}.
   * @returns `true` when this failure blocked the source.
   */
  failed(source: string): boolean {
    const now = this.#now();
    let state = this.#sources.get(source);
    if (state === undefined || now - state.windowStart >= this.#windowMs) {
      if (state !== undefined && state.blockedUntil > now) return false;
      state = { windowStart: now, failures: 0, blockedUntil: 0 };
    }
    // Re-inserted so that the map's order is least recently failed first.
    this.#sources.delete(source);
    this.#sources.set(source, state);
    this.#evict(now);
    state.failures++;
    if (state.failures < this.#maxFailures || state.blockedUntil > now) {
      return false;
    }
    state.blockedUntil = now + this.#blockMs;
    return true;
  }

  #evict(now: number): void {
    if (this.#sources.size <= this.#maxSources) return;
    for (const [key, state] of this.#sources) {
      const idle = now - state.windowStart >= this.#windowMs &&
        state.blockedUntil <= now;
      if (idle) this.#sources.delete(key);
    }
    // Still full of live sources: the least recent ones are forgotten.
    for (const key of this.#sources.keys()) {
      if (this.#sources.size <= this.#maxSources) break;
      this.#sources.delete(key);
    }
  }
}

/**
 * The key a client address is counted under: an IPv4 address itself, an
 * IPv6 address's /64 (one host usually holds a whole /64, so counting
 * single addresses would let it fail without end).
 *
 * @param address The client's address, IPv6 without brackets.
 * @returns The key.
 *
 * @example
 * ```ts
 * sourceKey("2001:db8::1"); // "2001:db8::/64"
 * sourceKey("192.0.2.7"); // "192.0.2.7"
 * ```
 */
export function sourceKey(address: string): string {
  const bytes = ipBytes(address);
  if (bytes === undefined || bytes.length === 4) return address;
  const mapped = bytes.subarray(0, 10).every((byte) => byte === 0) &&
    bytes[10] === 0xff && bytes[11] === 0xff;
  if (mapped) return ipText(bytes.subarray(12));
  const prefix = new Uint8Array(16);
  prefix.set(bytes.subarray(0, 8));
  return `${ipText(prefix)}/64`;
}
