/**
 * The one option table: every setting a tunnel takes, with its `key=value`
 * name in a config entry, its command-line flag, the {@link TunnelOptions}
 * field it sets, the type of its value, its help line and its default.
 * The config's options, the command line's tunnel flags and the usage text
 * are generated from it. Pure.
 *
 * @module
 */

import { formatDurationSetting, parseDuration } from "../time/duration.ts";

/** The settings that govern one entry's tunnels. */
export interface TunnelOptions {
  /** Limit for each TCP connect. */
  readonly connectTimeoutMs: number;
  /** Limit for a proxy's whole `CONNECT` exchange. */
  readonly handshakeTimeoutMs: number;
  /** Close a tunnel with no bytes either way for this long; off when absent. */
  readonly idleTimeoutMs?: number;
  /** After one side finished sending, close when nothing moves for this long. */
  readonly lingerTimeoutMs: number;
  /** TCP keepalive on both legs. */
  readonly keepAlive: boolean;
  /** Most tunnels open at once for the entry; unlimited when absent. */
  readonly maxConnections?: number;
  /** How long a removed entry's tunnels may go on; unlimited when absent. */
  readonly drainTimeoutMs?: number;
  /** PEM certificates trusted for https:// proxies, besides the system's. */
  readonly caCerts?: readonly string[];
  /** The bearer token for ws:// and wss:// hops. Never logged. */
  readonly token?: string;
  /** Time between a ws:// or wss:// tunnel's pings; 30 s when absent. */
  readonly heartbeatMs?: number;
  /** SHA-256 of the certificate a wss:// server must present (pinning). */
  readonly fingerprint?: Uint8Array;
  /** PEM certificate (chain) shown to a wss:// server that asks for one. */
  readonly clientCert?: string;
  /** PEM private key of {@link TunnelOptions.clientCert}. Never logged. */
  readonly clientKey?: string;
  /** Open ws:// and wss:// tunnels as streams of a shared session; on when absent. */
  readonly mux?: boolean;
  /** Reconnect a lost ws:// or wss:// session and resume it; on when absent. */
  readonly resume?: boolean;
  /** How long a session may be without its transport; 10 min when absent. */
  readonly resumeWindowMs?: number;
  /** Most streams on one session before another is opened; 100 when absent. */
  readonly maxStreams?: number;
  /** What carries a ws:// or wss:// session; `auto` when absent. */
  readonly transport?: "auto" | "ws" | "poll";
}

/** The defaults: 10 s connect, 10 s handshake, 2 min linger, keepalive on. */
export const DEFAULT_TUNNEL_OPTIONS: TunnelOptions = {
  connectTimeoutMs: 10_000,
  handshakeTimeoutMs: 10_000,
  lingerTimeoutMs: 120_000,
  keepAlive: true,
};

/** What a file an option names holds: it decides how the file is read. */
export type FileKind = "credentials" | "certificates" | "certificate" | "key";

/** How messages name each kind of file. */
export const FILE_KIND_WORDS: Readonly<Record<FileKind, string>> = {
  credentials: "credentials file",
  certificates: "CA file",
  certificate: "certificate file",
  key: "private key file",
};

/** How an option's value is written, read and shown. */
export interface ValueType<T> {
  /** Stands for the value in the usage text, e.g. `D`. */
  readonly placeholder: string;
  /** What a value is, for a config entry's message: `use a duration`. */
  readonly kind: string;
  /** What a flag's value must be: `--idle-timeout must be a positive duration …`. */
  readonly expected: string;
  /** The only values there are, when they are few: `keepalive=on|off`. */
  readonly choices?: readonly string[];
  /** Set when the value names a file; {@link ValueType.parse} then reads its contents. */
  readonly file?: FileKind;
  /** Set when the value is a secret: messages and listings never show it. */
  readonly secret?: boolean;
  /** Reads a value as written; `undefined` when it is not one. */
  parse(text: string): T | undefined;
  /** Writes a value as {@link ValueType.parse} reads it; `String` when absent. */
  format?(value: T): string;
}

/** A positive duration: `10` (seconds), `500ms`, `10s`, `2m`, `1h`. */
export const DURATION: ValueType<number> = {
  placeholder: "D",
  kind: "a duration",
  expected: "a positive duration such as 10, 500ms, 2m or 1h",
  parse: parseDuration,
  format: formatDurationSetting,
};

/** A whole number from 1. */
export const COUNT: ValueType<number> = {
  placeholder: "N",
  kind: "a whole number from 1",
  expected: "a whole number from 1",
  parse: (text) => /^[1-9]\d{0,6}$/.test(text) ? Number(text) : undefined,
};

/** `on` or `off`. */
const ON_OFF: ValueType<boolean> = {
  placeholder: "on|off",
  kind: "on or off",
  expected: "on or off",
  choices: ["on", "off"],
  parse: (text) => text === "on" ? true : text === "off" ? false : undefined,
  format: (value) => value ? "on" : "off",
};

/** `transport=`: what carries a session. */
const TRANSPORT: ValueType<"auto" | "ws" | "poll"> = {
  placeholder: "auto|ws|poll",
  kind: "auto, ws or poll",
  expected: "auto, ws or poll",
  choices: ["auto", "ws", "poll"],
  parse: (text) =>
    text === "auto" || text === "ws" || text === "poll" ? text : undefined,
};

/** A file of PEM certificates; the value is its contents. */
const CERTIFICATES: ValueType<readonly string[]> = {
  placeholder: "FILE",
  kind: "a file of PEM certificates",
  expected: "a file of PEM certificates",
  file: "certificates",
  parse: (contents) => [contents],
};

/** A file holding a PEM certificate (chain); the value is its contents. */
const CERTIFICATE: ValueType<string> = {
  placeholder: "FILE",
  kind: "a file holding a PEM certificate",
  expected: "a file holding a PEM certificate",
  file: "certificate",
  parse: (contents) =>
    contents.includes("-----BEGIN CERTIFICATE-----") ? contents : undefined,
  format: () => "(certificate)",
};

/** A file holding a PEM private key; the value is its contents, a secret. */
const PRIVATE_KEY: ValueType<string> = {
  placeholder: "FILE",
  kind: "a file holding a PEM private key",
  expected: "a file holding a PEM private key",
  file: "key",
  secret: true,
  parse: (contents) =>
    /-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----/.test(contents)
      ? contents
      : undefined,
  format: () => "***",
};

/** A bearer token: visible ASCII, no spaces. */
const TOKEN: ValueType<string> = {
  placeholder: "TOKEN",
  kind: "a token of visible ASCII characters without spaces",
  expected: "a token of visible ASCII characters without spaces",
  secret: true,
  parse: (text) => /^[\x21-\x7e]{1,4096}$/.test(text) ? text : undefined,
  format: () => "***",
};

/**
 * A certificate's SHA-256: `sha256:` then 64 hex digits (colons allowed,
 * as `openssl x509 -fingerprint -sha256` prints them) or base64.
 */
export const FINGERPRINT: ValueType<Uint8Array> = {
  placeholder: "sha256:HEX",
  kind: "sha256: followed by the certificate's SHA-256 in hex or base64",
  expected: "sha256: followed by the certificate's SHA-256 in hex or base64",
  parse: parseFingerprint,
  format: (value) =>
    `sha256:${
      Array.from(value, (byte) => byte.toString(16).padStart(2, "0")).join("")
    }`,
};

/**
 * Reads a certificate fingerprint.
 *
 * @param text `sha256:` and 32 bytes in hex (colons allowed) or base64.
 * @returns The 32 bytes, or `undefined` when `text` is not one.
 *
 * @example
 * ```ts
 * parseFingerprint("sha256:" + "ab".repeat(32))?.length; // 32
 * ```
 */
export function parseFingerprint(text: string): Uint8Array | undefined {
  const match = /^sha256:(.+)$/i.exec(text);
  if (!match) return undefined;
  const hex = match[1].replaceAll(":", "");
  if (/^[0-9a-fA-F]{64}$/.test(hex)) {
    return Uint8Array.from(
      hex.match(/../g)!,
      (pair) => parseInt(pair, 16),
    );
  }
  if (!/^[A-Za-z0-9+/]{43}=?$/.test(match[1])) return undefined;
  const bytes = Uint8Array.from(
    atob(match[1].endsWith("=") ? match[1] : `${match[1]}=`),
    (c) => c.charCodeAt(0),
  );
  return bytes.length === 32 ? bytes : undefined;
}

/** One row of the table: the setting of one {@link TunnelOptions} field. */
export interface TunnelOption<F extends keyof TunnelOptions> {
  /** The field it sets. */
  readonly field: F;
  /** Its `key=value` name in a config entry. */
  readonly key: string;
  /** Its command-line flag, without `--`; absent when only entries set it. */
  readonly flag?: string;
  /** Whether only `run` takes the flag (it matters only while a config runs). */
  readonly runOnly?: boolean;
  /** How its value is written; it reads the field's type. */
  readonly type: ValueType<NonNullable<TunnelOptions[F]>>;
  /** A sensible value, suggested in a config entry's message. */
  readonly example?: string;
  /** The flag's line in the usage text, without the default. */
  readonly help?: string;
  /** The usage text's default when {@link DEFAULT_TUNNEL_OPTIONS} has none. */
  readonly unset?: string;
}

/** Any row of the table. */
export type AnyTunnelOption = {
  [F in keyof TunnelOptions]-?: TunnelOption<F>;
}[keyof TunnelOptions];

/**
 * The table, one row per field. Its order is the order config messages
 * list the keys in.
 */
export const TUNNEL_OPTIONS: {
  readonly [F in keyof TunnelOptions]-?: TunnelOption<F>;
} = {
  connectTimeoutMs: {
    field: "connectTimeoutMs",
    key: "connect-timeout",
    flag: "connect-timeout",
    type: DURATION,
    example: "10s",
    help: "TCP connect limit",
  },
  handshakeTimeoutMs: {
    field: "handshakeTimeoutMs",
    key: "handshake-timeout",
    flag: "handshake-timeout",
    type: DURATION,
    example: "10s",
    help: "proxy CONNECT exchange limit",
  },
  idleTimeoutMs: {
    field: "idleTimeoutMs",
    key: "idle-timeout",
    flag: "idle-timeout",
    type: DURATION,
    example: "15m",
    help: "close tunnels where nothing moves for D",
    unset: "off",
  },
  lingerTimeoutMs: {
    field: "lingerTimeoutMs",
    key: "linger-timeout",
    flag: "linger-timeout",
    type: DURATION,
    example: "2m",
    help: "close half-closed tunnels where nothing moves for D",
  },
  drainTimeoutMs: {
    field: "drainTimeoutMs",
    key: "drain-timeout",
    flag: "drain-timeout",
    runOnly: true,
    type: DURATION,
    example: "1h",
    help: "how long tunnels of a removed entry may go on",
    unset: "no limit",
  },
  // The flag of the same name limits all entries together: run's own.
  maxConnections: {
    field: "maxConnections",
    key: "max-connections",
    type: COUNT,
  },
  keepAlive: { field: "keepAlive", key: "keepalive", type: ON_OFF },
  caCerts: {
    field: "caCerts",
    key: "ca-file",
    flag: "ca-file",
    type: CERTIFICATES,
    help:
      "PEM certificates to trust for https:// proxies and wss:// servers, besides the system's",
  },
  token: {
    field: "token",
    key: "token",
    flag: "token",
    type: TOKEN,
    help: "bearer token for ws:// and wss:// hops (ps shows it: prefer token=)",
  },
  heartbeatMs: {
    field: "heartbeatMs",
    key: "heartbeat",
    flag: "heartbeat",
    type: DURATION,
    example: "30s",
    help: "ping a ws:// or wss:// hop every D; end the tunnel after 2 D silent",
    unset: "30s",
  },
  fingerprint: {
    field: "fingerprint",
    key: "fingerprint",
    flag: "fingerprint",
    type: FINGERPRINT,
    example: "sha256:<64 hex digits>",
    help: "pin the certificate a wss:// server presents, by its SHA-256",
  },
  clientCert: {
    field: "clientCert",
    key: "client-cert",
    flag: "client-cert",
    type: CERTIFICATE,
    help:
      "client certificate (PEM) for a wss:// server that asks for one (serve --client-ca), with client-key",
  },
  clientKey: {
    field: "clientKey",
    key: "client-key",
    flag: "client-key",
    type: PRIVATE_KEY,
    help: "private key (PEM) of client-cert",
  },
  mux: {
    field: "mux",
    key: "mux",
    flag: "mux",
    type: ON_OFF,
    help:
      "open ws:// and wss:// tunnels as streams of one session per server, without a new handshake",
    unset: "on",
  },
  resume: {
    field: "resume",
    key: "resume",
    flag: "resume",
    type: ON_OFF,
    help:
      "when a ws:// or wss:// session's connection drops, reconnect (whole chain) and go on where the streams stopped",
    unset: "on",
  },
  resumeWindowMs: {
    field: "resumeWindowMs",
    key: "resume-window",
    flag: "resume-window",
    type: DURATION,
    example: "10m",
    help: "give up reconnecting a session after D; its tunnels then end",
    unset: "10m",
  },
  maxStreams: {
    field: "maxStreams",
    key: "max-streams",
    flag: "max-streams",
    type: COUNT,
    example: "100",
    help: "streams per session before another session is opened",
    unset: "100",
  },
  transport: {
    field: "transport",
    key: "transport",
    flag: "transport",
    type: TRANSPORT,
    help:
      "what carries a ws:// or wss:// session: WebSocket, plain HTTP polling (through proxies that remove Upgrade or buffer answers), or auto: WebSocket, then polling when the upgrade does not get through",
    unset: "auto",
  },
};

/** The rows in table order. */
export const TUNNEL_OPTION_ROWS: readonly AnyTunnelOption[] = Object.values(
  TUNNEL_OPTIONS,
);

type Settings = { -readonly [F in keyof TunnelOptions]?: TunnelOptions[F] };

/**
 * Reads one option's value into settings.
 *
 * @param option The row.
 * @param text The value as written; a file's contents when the type names a file.
 * @returns The setting, or `undefined` when `text` is not a value of the type.
 *
 * @example
 * ```ts
 * readTunnelOption(TUNNEL_OPTIONS.idleTimeoutMs, "5m"); // { idleTimeoutMs: 300000 }
 * ```
 */
export function readTunnelOption<F extends keyof TunnelOptions>(
  option: TunnelOption<F>,
  text: string,
): Partial<TunnelOptions> | undefined {
  const value = option.type.parse(text);
  if (value === undefined) return undefined;
  const settings: Settings = {};
  settings[option.field] = value;
  return settings;
}

/**
 * The default of an option as the usage text shows it.
 *
 * @param option The row.
 * @returns e.g. `10s`, the row's `unset` text, or `undefined` for none.
 */
export function shownDefault<F extends keyof TunnelOptions>(
  option: TunnelOption<F>,
): string | undefined {
  const value = DEFAULT_TUNNEL_OPTIONS[option.field];
  if (value === undefined) return option.unset;
  return option.type.format?.(value) ?? String(value);
}
