/**
 * Errors of the session layer: a frame that cannot be decoded, and a peer
 * (or a caller) that breaks the session's rules. Both are typed, so the
 * transport that carries a session can tell a broken peer from a local
 * limit and say which in its log line.
 *
 * @module
 */

/**
 * What is wrong with a frame: `version` (a protocol version this build does
 * not speak), `type` (an unknown frame type), `size` (a frame, string or
 * count over its bound), `malformed` (a field that cannot be what it
 * claims: a bad length, stream id, flag, host, code or UTF-8 text).
 */
export type FrameProblem = "version" | "type" | "size" | "malformed";

/** A frame that cannot be decoded; the transport that sent it is unusable. */
export class FrameError extends Error {
  /** Which problem. */
  readonly problem: FrameProblem;

  /**
   * A frame error.
   *
   * @param problem Which problem.
   * @param message What was wrong, naming the field and its bound.
   */
  constructor(problem: FrameProblem, message: string) {
    super(message);
    this.name = "FrameError";
    this.problem = problem;
  }
}

/**
 * Which session rule was broken: `protocol` (the peer sent a frame that the
 * session's state forbids: data beyond the window, a gap in the byte
 * sequence, an unknown stream), `limit` (a local bound: too many streams or
 * sessions), `state` (the caller used a stream that is not open for it).
 */
export type SessionProblem = "protocol" | "limit" | "state";

/** A broken session rule; `problem` says whose fault it is. */
export class SessionError extends Error {
  /** Which rule. */
  readonly problem: SessionProblem;

  /**
   * A session error.
   *
   * @param problem Which rule.
   * @param message What happened, naming the stream and the bound.
   */
  constructor(problem: SessionProblem, message: string) {
    super(message);
    this.name = "SessionError";
    this.problem = problem;
  }
}
