/**
 * NTLMv2 (MS-NLMP): the negotiate (type 1) message, parsing the server's
 * challenge (type 2), and the authenticate (type 3) message with an NTLMv2
 * response. Pure functions; the random client challenge and the clock are
 * parameters.
 *
 * @module
 */

import { createHash, createHmac } from "node:crypto";
import { concat } from "../../net/bytes.ts";

const SIGNATURE = [0x4e, 0x54, 0x4c, 0x4d, 0x53, 0x53, 0x50, 0x00]; // NTLMSSP\0

/** Negotiate flags (MS-NLMP §2.2.2.5) this client uses. */
export const NTLM_FLAGS = {
  UNICODE: 0x00000001,
  OEM: 0x00000002,
  REQUEST_TARGET: 0x00000004,
  NTLM: 0x00000200,
  ALWAYS_SIGN: 0x00008000,
  EXTENDED_SESSIONSECURITY: 0x00080000,
  TARGET_INFO: 0x00800000,
  KEY_128: 0x20000000,
  KEY_56: 0x80000000,
} as const;

const CLIENT_FLAGS = NTLM_FLAGS.UNICODE | NTLM_FLAGS.OEM |
  NTLM_FLAGS.REQUEST_TARGET | NTLM_FLAGS.NTLM | NTLM_FLAGS.ALWAYS_SIGN |
  NTLM_FLAGS.EXTENDED_SESSIONSECURITY | NTLM_FLAGS.KEY_128 | NTLM_FLAGS.KEY_56;

const AV_TIMESTAMP = 7;

/** The parts of a server's CHALLENGE_MESSAGE that the response needs. */
export interface NtlmChallenge {
  /** The server's negotiate flags. */
  readonly flags: number;
  /** The 8-byte server challenge. */
  readonly serverChallenge: Uint8Array;
  /** The target info AV pairs, as sent. */
  readonly targetInfo: Uint8Array;
  /** The server's timestamp from the target info, if present (FILETIME). */
  readonly timestamp?: bigint;
}

/** A user name split for NTLM: `DOMAIN\user`, or `user@domain` kept whole. */
export interface NtlmUser {
  /** The user name. */
  readonly user: string;
  /** The domain, empty when none was given. */
  readonly domain: string;
}

/**
 * Splits `DOMAIN\user` into its parts; other forms are the user name alone.
 *
 * @param username As configured, e.g. `CORP\jane` or `jane@corp.example`.
 * @returns The user and domain.
 */
export function splitNtlmUser(username: string): NtlmUser {
  const slash = username.indexOf("\\");
  return slash < 0
    ? { user: username, domain: "" }
    : { domain: username.slice(0, slash), user: username.slice(slash + 1) };
}

/**
 * Builds the NEGOTIATE_MESSAGE (type 1).
 *
 * @returns The message bytes, to be sent base64-encoded after `NTLM `.
 */
export function ntlmNegotiateMessage(): Uint8Array {
  const message = new Uint8Array(32);
  const view = new DataView(message.buffer);
  message.set(SIGNATURE);
  view.setUint32(8, 1, true);
  view.setUint32(12, CLIENT_FLAGS, true);
  return message;
}

/**
 * Parses a CHALLENGE_MESSAGE (type 2).
 *
 * @param message The decoded bytes of the proxy's `NTLM <token68>`.
 * @returns The flags, server challenge and target info.
 * @throws {Error} when the bytes are not a type 2 message.
 */
export function parseNtlmChallenge(message: Uint8Array): NtlmChallenge {
  const view = new DataView(message.buffer, message.byteOffset, message.length);
  if (
    message.length < 32 || SIGNATURE.some((b, i) => message[i] !== b) ||
    view.getUint32(8, true) !== 2
  ) {
    throw new Error("the proxy's NTLM challenge is not a type 2 message");
  }
  const flags = view.getUint32(20, true);
  let targetInfo = new Uint8Array(0);
  // The fields exist only when the flag says so; older servers send
  // shorter messages with other bytes there.
  if ((flags & NTLM_FLAGS.TARGET_INFO) !== 0 && message.length >= 48) {
    const length = view.getUint16(40, true);
    const offset = view.getUint32(44, true);
    if (offset + length > message.length) {
      throw new Error("the proxy's NTLM challenge has a truncated target info");
    }
    targetInfo = message.slice(offset, offset + length);
  }
  return {
    flags,
    serverChallenge: message.slice(24, 32),
    targetInfo,
    timestamp: findTimestamp(targetInfo),
  };
}

function findTimestamp(targetInfo: Uint8Array): bigint | undefined {
  const view = new DataView(
    targetInfo.buffer,
    targetInfo.byteOffset,
    targetInfo.length,
  );
  for (let offset = 0; offset + 4 <= targetInfo.length;) {
    const id = view.getUint16(offset, true);
    const length = view.getUint16(offset + 2, true);
    if (id === 0) break;
    if (
      id === AV_TIMESTAMP && length === 8 && offset + 12 <= targetInfo.length
    ) {
      return view.getBigUint64(offset + 4, true);
    }
    offset += 4 + length;
  }
  return undefined;
}

function utf16le(text: string): Uint8Array {
  const bytes = new Uint8Array(text.length * 2);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < text.length; i++) {
    view.setUint16(i * 2, text.charCodeAt(i), true);
  }
  return bytes;
}

function hmacMd5(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const hmac = createHmac("md5", key);
  for (const part of parts) hmac.update(part);
  return new Uint8Array(hmac.digest());
}

/**
 * NTOWFv2 (MS-NLMP §3.3.2): the NTLMv2 response key.
 *
 * @param password The password.
 * @param user The user name.
 * @param domain The user's domain.
 * @returns The 16-byte key.
 */
export function ntowfv2(
  password: string,
  user: string,
  domain: string,
): Uint8Array {
  const ntHash = new Uint8Array(
    createHash("md4").update(utf16le(password)).digest(),
  );
  return hmacMd5(ntHash, utf16le(user.toUpperCase() + domain));
}

/** The client's half of an NTLMv2 exchange. */
export interface NtlmV2Input {
  /** The parsed type 2 message. */
  readonly challenge: NtlmChallenge;
  /** User and domain. */
  readonly user: NtlmUser;
  /** The password. */
  readonly password: string;
  /** 8 random bytes. */
  readonly clientChallenge: Uint8Array;
  /** Now, as a Windows FILETIME; used when the server sent no timestamp. */
  readonly now: bigint;
}

/** The two challenge responses of an AUTHENTICATE_MESSAGE. */
export interface NtlmV2Responses {
  /** LmChallengeResponse: LMv2, or zeros when the server sent a timestamp. */
  readonly lm: Uint8Array;
  /** NtChallengeResponse: NTProofStr followed by the client blob. */
  readonly nt: Uint8Array;
}

/**
 * Computes the NTLMv2 and LMv2 responses (MS-NLMP §3.3.2).
 *
 * @param input Challenge, credentials, client challenge and time.
 * @returns The responses.
 */
export function ntlmV2Responses(input: NtlmV2Input): NtlmV2Responses {
  const { challenge, user, password, clientChallenge } = input;
  const key = ntowfv2(password, user.user, user.domain);
  const temp = new Uint8Array(28 + challenge.targetInfo.length + 4);
  const view = new DataView(temp.buffer);
  temp[0] = 1;
  temp[1] = 1;
  view.setBigUint64(8, challenge.timestamp ?? input.now, true);
  temp.set(clientChallenge, 16);
  temp.set(challenge.targetInfo, 28);
  const proof = hmacMd5(key, challenge.serverChallenge, temp);
  const nt = concat(proof, temp);
  const lm = challenge.timestamp === undefined
    ? concat(
      hmacMd5(key, challenge.serverChallenge, clientChallenge),
      clientChallenge,
    )
    : new Uint8Array(24);
  return { lm, nt };
}

/**
 * Builds the AUTHENTICATE_MESSAGE (type 3) with NTLMv2 responses.
 *
 * @param input Challenge, credentials, client challenge and time.
 * @param workstation The client's name; may be empty.
 * @returns The message bytes, to be sent base64-encoded after `NTLM `.
 */
export function ntlmAuthenticateMessage(
  input: NtlmV2Input,
  workstation = "",
): Uint8Array {
  const { lm, nt } = ntlmV2Responses(input);
  const unicode = (input.challenge.flags & NTLM_FLAGS.UNICODE) !== 0;
  const encode = (text: string) =>
    unicode ? utf16le(text) : new TextEncoder().encode(text);
  const flags = (CLIENT_FLAGS & input.challenge.flags) |
    (unicode ? NTLM_FLAGS.UNICODE : NTLM_FLAGS.OEM);
  const fields = [
    lm,
    nt,
    encode(input.user.domain),
    encode(input.user.user),
    encode(workstation),
    new Uint8Array(0),
  ];
  const header = 64;
  const message = new Uint8Array(
    header + fields.reduce((sum, field) => sum + field.length, 0),
  );
  const view = new DataView(message.buffer);
  message.set(SIGNATURE);
  view.setUint32(8, 3, true);
  let offset = header;
  for (const [index, field] of fields.entries()) {
    const at = 12 + index * 8;
    view.setUint16(at, field.length, true);
    view.setUint16(at + 2, field.length, true);
    view.setUint32(at + 4, offset, true);
    message.set(field, offset);
    offset += field.length;
  }
  view.setUint32(60, flags >>> 0, true);
  return message;
}

/**
 * Converts milliseconds since the Unix epoch to a Windows FILETIME.
 *
 * @param ms e.g. `Date.now()`.
 * @returns 100-nanosecond intervals since 1601-01-01.
 */
export function fileTime(ms: number): bigint {
  return (BigInt(Math.floor(ms)) + 11_644_473_600_000n) * 10_000n;
}
