/**
 * The server's sessions, matched to reconnecting clients. Pure state, no
 * I/O: the serve side gives it each HELLO with the name of the token that
 * authenticated the transport, and an opaque handle of that transport.
 *
 * Anti-hijack rules:
 * - A session id is {@link SESSION_ID_BYTES} bytes from the injected
 *   randomness (the system's CSPRNG by default), so it cannot be guessed.
 * - A session is bound to the token that created it: a HELLO naming it
 *   over a transport authenticated by another token is answered as if the
 *   session did not exist (`refused`, with a new session), so an id seen by
 *   someone else is useless without the token, and a client cannot learn
 *   whether an id exists.
 * - A session has one transport at a time: a HELLO with the same token
 *   takes the session over, and the old transport gets GOAWAY.
 * - A session without a transport for the resume window is swept: its
 *   streams are reset with {@link EXPIRED_REASON}.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { SessionError } from "./errors.ts";
import type {
  GoawayFrame,
  HelloFrame,
  ResumeOutcome,
  WelcomeFrame,
} from "./frame.ts";
import { SESSION_ID_BYTES } from "./frame.ts";
import { EXPIRED_REASON, Session, type SessionOptions } from "./session.ts";

/** Bounds, clock and randomness of a {@link SessionTable}. */
export interface SessionTableOptions {
  /** Options of each session (the role is `server`). */
  readonly session?: Omit<SessionOptions, "role" | "now">;
  /**
   * Most sessions kept, live or waiting for a resume.
   * @default 1024
   */
  readonly maxSessions?: number;
  /**
   * The clock, in milliseconds, for every session.
   * @default Date.now
   */
  readonly now?: () => number;
  /**
   * Fills bytes with randomness, for session ids.
   * @default crypto.getRandomValues
   */
  readonly random?: (bytes: Uint8Array) => void;
}

/** Default of {@link SessionTableOptions.maxSessions}. */
export const DEFAULT_MAX_SESSIONS = 1024;

/**
 * Why a resume was refused, for the server's log only: the client is told
 * `refused` whatever the reason, so it cannot probe for ids.
 */
export type ResumeRefusal = "unknown" | "token" | "expired";

/** What {@link SessionTable.hello} decided. */
export interface Attachment<T> {
  /** The session the transport now carries. */
  readonly session: Session;
  /** Send this first; the session's own frames follow. */
  readonly welcome: WelcomeFrame;
  /** New, resumed, or refused (then `session` is a new one). */
  readonly outcome: ResumeOutcome;
  /** Why a resume was refused, for the log. */
  readonly refusal?: ResumeRefusal;
  /**
   * The transport that carried the session before: read nothing more from
   * it (its frames would be taken as the new transport's), send it
   * `goaway`, close it.
   */
  readonly replaced?: { readonly transport: T; readonly goaway: GoawayFrame };
}

/** A session the sweep ended. */
export interface ExpiredSession {
  /** The session; its `reset` events say which streams closed. */
  readonly session: Session;
  /** A short, loggable form of its id (see {@link sessionLabel}). */
  readonly label: string;
  /** The name of the token it was bound to. */
  readonly token: string;
  /** Why it ended. */
  readonly reason: string;
}

interface Record<T> {
  readonly session: Session;
  readonly token: string;
  transport: T | undefined;
}

/**
 * The server's sessions, by id and bound token.
 *
 * @typeParam T Whatever identifies a transport to the caller.
 */
export class SessionTable<T> {
  readonly #options: SessionTableOptions;
  readonly #maxSessions: number;
  readonly #random: (bytes: Uint8Array) => void;
  #records = new Map<string, Record<T>>();
  #ended: ExpiredSession[] = [];

  /**
   * An empty table.
   *
   * @param options Bounds, clock and randomness.
   */
  constructor(options: SessionTableOptions = {}) {
    this.#options = options;
    this.#maxSessions = options.maxSessions ?? DEFAULT_MAX_SESSIONS;
    this.#random = options.random ??
      ((bytes) => void crypto.getRandomValues(bytes));
  }

  /** Sessions kept, live or waiting for a resume. */
  get size(): number {
    return this.#records.size;
  }

  /**
   * Answers a HELLO that arrived on `transport`, authenticated as `token`.
   *
   * @param frame The HELLO.
   * @param token The name of the token that authenticated the transport.
   * @param transport The transport's handle.
   * @returns The session, the WELCOME to send, and the transport replaced.
   * @throws {SessionError} (`limit`) when `maxSessions` are kept and a new
   *   one is needed; (`protocol`) when the HELLO's stream offsets claim
   *   bytes the session never sent.
   */
  hello(frame: HelloFrame, token: string, transport: T): Attachment<T> {
    let refusal: ResumeRefusal | undefined;
    if (frame.session) {
      const record = this.#records.get(hex(frame.session));
      // A foreign token is told the same as a wrong id: see the module doc.
      if (!record) refusal = "unknown";
      else if (record.token !== token) refusal = "token";
      else if (record.session.expired) refusal = "expired";
      else return this.#resume(record, frame, transport);
    }
    const session = this.#create(token, transport);
    return {
      session,
      welcome: {
        type: "welcome",
        session: session.id!,
        resume: refusal ? "refused" : "new",
        streams: [],
      },
      outcome: refusal ? "refused" : "new",
      refusal,
    };
  }

  /**
   * A transport died. The session it carried (if it still does) waits for
   * a resume; a transport already replaced changes nothing.
   *
   * @param session The session the transport carried.
   * @param transport The transport's handle.
   */
  detach(session: Session, transport: T): void {
    const id = session.id;
    const record = id && this.#records.get(hex(id));
    if (!record || record.session !== session) return;
    if (record.transport !== transport) return;
    record.transport = undefined;
    session.transportLost();
  }

  /**
   * Forgets a session that ended normally (the client said so).
   *
   * @param session The session.
   */
  remove(session: Session): void {
    const id = session.id;
    if (id && this.#records.get(hex(id))?.session === session) {
      this.#records.delete(hex(id));
    }
  }

  /**
   * Ends every session whose transport has been gone for the resume
   * window: its streams are reset with {@link EXPIRED_REASON}. The caller
   * runs it on a timer; a new session that finds the table full runs it
   * too, and the sessions that ended then come with the next call.
   *
   * @returns The sessions ended since the last call, for the log.
   */
  sweep(): ExpiredSession[] {
    const ended = this.#ended;
    this.#ended = [];
    for (const [key, record] of this.#records) {
      if (record.transport !== undefined || !record.session.expired) continue;
      this.#records.delete(key);
      record.session.expire(EXPIRED_REASON);
      ended.push({
        session: record.session,
        label: sessionLabel(record.session.id!),
        token: record.token,
        reason: EXPIRED_REASON,
      });
    }
    return ended;
  }

  #resume(record: Record<T>, frame: HelloFrame, transport: T): Attachment<T> {
    const { session } = record;
    const previous = record.transport;
    session.transportLost();
    record.transport = transport;
    const streams = session.resumeEntries();
    session.resume(frame.streams);
    return {
      session,
      welcome: {
        type: "welcome",
        session: session.id!,
        resume: "resumed",
        streams,
      },
      outcome: "resumed",
      replaced: previous === undefined || previous === transport ? undefined : {
        transport: previous,
        goaway: {
          type: "goaway",
          reason: "the session moved to a newer transport",
        },
      },
    };
  }

  #create(token: string, transport: T): Session {
    // Sessions swept to make room are reported by the next sweep().
    if (this.#records.size >= this.#maxSessions) this.#ended = this.sweep();
    if (this.#records.size >= this.#maxSessions) {
      throw new SessionError(
        "limit",
        `cannot start a session for token "${token}": ${this.#maxSessions} sessions are kept, the server's limit (maxSessions)`,
      );
    }
    const id = new Uint8Array(SESSION_ID_BYTES);
    // 128 random bits do not repeat; a source that does is broken.
    this.#random(id);
    if (this.#records.has(hex(id))) {
      throw new Error("the random source repeated a session id");
    }
    const session = new Session({
      ...this.#options.session,
      role: "server",
      now: this.#options.now,
    });
    session.assignId(id);
    session.connect();
    this.#records.set(hex(id), { session, token, transport });
    return session;
  }
}

/**
 * A session id's first 4 bytes in hex and an ellipsis: enough to tell
 * sessions apart in a log, too little to resume one.
 *
 * @param id The session id.
 * @returns e.g. `1a2b3c4d…`.
 */
export function sessionLabel(id: Uint8Array): string {
  return `${hex(id.subarray(0, 4))}…`;
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString(
    "hex",
  );
}
