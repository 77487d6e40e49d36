/**
 * The shared-memory protocol that makes the PAC helpers' name lookups
 * (`dnsResolve`, `isResolvable`, `myIpAddress` and their `Ex` forms)
 * synchronous inside the sandbox Worker: the Worker writes a question into
 * a SharedArrayBuffer and blocks in `Atomics.wait`; the main thread, which
 * may do I/O, writes the answer and calls `Atomics.notify`. A sequence
 * number ties an answer to its question, so that an answer that comes
 * after the Worker gave up is never read as the next question's. Pure.
 *
 * Layout: an Int32Array header of {@link HEADER_INTS} (state, sequence,
 * operation, payload length), then {@link MAX_PAYLOAD_BYTES} of UTF-8
 * payload: the host name asked about, or the addresses answered, one per
 * line.
 *
 * @module
 */

/** What the Worker asks. */
export type DnsOperation = "resolveIpv4" | "resolveAll" | "myAddresses";

const OPERATIONS: readonly DnsOperation[] = [
  "resolveIpv4",
  "resolveAll",
  "myAddresses",
];

/** The header's Int32 slots. */
const STATE = 0;
const SEQUENCE = 1;
const OPERATION = 2;
const LENGTH = 3;
/** Int32 slots before the payload. */
export const HEADER_INTS = 4;
/** The largest question or answer: a host name, or some addresses. */
export const MAX_PAYLOAD_BYTES = 4096;
/** Most addresses an answer carries; a PAC needs the first few. */
export const MAX_ADDRESSES = 32;

/** The header's state slot: idle, asked, answered. */
export const IDLE = 0;
/** The Worker has written a question and waits. */
export const ASKED = 1;
/** The main thread has written the answer. */
export const ANSWERED = 2;

/** A question read off the buffer. */
export interface DnsQuestion {
  /** Ties the answer to this question. */
  readonly sequence: number;
  /** What is asked. */
  readonly operation: DnsOperation;
  /** The host name; empty for `myAddresses`. */
  readonly host: string;
}

/**
 * A new buffer for one Worker.
 *
 * @returns The SharedArrayBuffer both sides view.
 */
export function newBridgeBuffer(): SharedArrayBuffer {
  return new SharedArrayBuffer(HEADER_INTS * 4 + MAX_PAYLOAD_BYTES);
}

function views(buffer: SharedArrayBuffer) {
  return {
    header: new Int32Array(buffer, 0, HEADER_INTS),
    payload: new Uint8Array(buffer, HEADER_INTS * 4, MAX_PAYLOAD_BYTES),
  };
}

// TextDecoder refuses views of shared memory, so bytes are copied out first.
function readPayload(buffer: SharedArrayBuffer): string {
  const { header, payload } = views(buffer);
  const length = Math.min(Atomics.load(header, LENGTH), MAX_PAYLOAD_BYTES);
  return new TextDecoder().decode(payload.slice(0, Math.max(length, 0)));
}

function writePayload(buffer: SharedArrayBuffer, text: string): void {
  const { header, payload } = views(buffer);
  const { written } = new TextEncoder().encodeInto(text, payload);
  Atomics.store(header, LENGTH, written);
}

/**
 * Writes a question (the Worker's side) and marks the buffer asked.
 *
 * @param buffer The bridge buffer.
 * @param operation What is asked.
 * @param host The host name, cut to the payload size.
 * @returns The question's sequence number, to wait for.
 */
export function writeQuestion(
  buffer: SharedArrayBuffer,
  operation: DnsOperation,
  host: string,
): number {
  const { header } = views(buffer);
  const sequence = (Atomics.load(header, SEQUENCE) + 1) | 0;
  writePayload(buffer, host.slice(0, 255));
  Atomics.store(header, OPERATION, OPERATIONS.indexOf(operation));
  Atomics.store(header, SEQUENCE, sequence);
  Atomics.store(header, STATE, ASKED);
  return sequence;
}

/**
 * Reads the question waiting in the buffer (the main thread's side).
 *
 * @param buffer The bridge buffer.
 * @returns The question, or `undefined` when none waits.
 */
export function readQuestion(
  buffer: SharedArrayBuffer,
): DnsQuestion | undefined {
  const { header } = views(buffer);
  if (Atomics.load(header, STATE) !== ASKED) return undefined;
  const operation = OPERATIONS[Atomics.load(header, OPERATION)];
  if (operation === undefined) return undefined;
  return {
    sequence: Atomics.load(header, SEQUENCE),
    operation,
    host: readPayload(buffer),
  };
}

/**
 * Writes the answer to question `sequence` and wakes the Worker, unless
 * the Worker has moved on to another question.
 *
 * @param buffer The bridge buffer.
 * @param sequence The question answered.
 * @param addresses The addresses, at most {@link MAX_ADDRESSES} kept.
 * @returns `false` when the answer came too late and was dropped.
 */
export function writeAnswer(
  buffer: SharedArrayBuffer,
  sequence: number,
  addresses: readonly string[],
): boolean {
  const { header } = views(buffer);
  if (
    Atomics.load(header, SEQUENCE) !== sequence ||
    Atomics.load(header, STATE) !== ASKED
  ) {
    return false;
  }
  let text = "";
  for (const address of addresses.slice(0, MAX_ADDRESSES)) {
    const next = text === "" ? address : `${text}\n${address}`;
    if (new TextEncoder().encode(next).length > MAX_PAYLOAD_BYTES) break;
    text = next;
  }
  writePayload(buffer, text);
  Atomics.store(header, STATE, ANSWERED);
  Atomics.notify(header, STATE);
  return true;
}

/**
 * Waits for the answer to question `sequence` (the Worker's side; it
 * blocks the thread) and resets the buffer to idle.
 *
 * @param buffer The bridge buffer.
 * @param sequence The question's number from {@link writeQuestion}.
 * @param timeoutMs How long to block at most.
 * @returns The addresses; `[]` when the answer did not come in time.
 */
export function awaitAnswer(
  buffer: SharedArrayBuffer,
  sequence: number,
  timeoutMs: number,
): string[] {
  const { header } = views(buffer);
  Atomics.wait(header, STATE, ASKED, timeoutMs);
  const answered = Atomics.load(header, STATE) === ANSWERED &&
    Atomics.load(header, SEQUENCE) === sequence;
  const text = answered ? readPayload(buffer) : "";
  Atomics.store(header, STATE, IDLE);
  return text === "" ? [] : text.split("\n");
}
