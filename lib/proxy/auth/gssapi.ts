/**
 * The system's GSSAPI (RFC 2744) through Deno's FFI: a {@link KerberosClient}
 * that makes SPNEGO tokens from the user's ticket cache.
 *
 * The library is opened on the first use, which happens only when a proxy
 * offers Negotiate, so that users without Kerberos never need `--allow-ffi`.
 * Linux loads `libgssapi_krb5.so.2` (MIT); macOS `GSS.framework`, then
 * `libgssapi_krb5.dylib` (untested: Apple's headers pack `gss_OID_desc` to 2
 * bytes, laid out below). Windows would need SSPI, which is not implemented.
 *
 * Every buffer, name, credential and context GSSAPI hands out is released
 * in a `finally`; the library itself stays open for the life of the process
 * (closing it would only make the next tunnel open it again).
 *
 * @module
 */

import {
  errorMessage,
  type GssStatus,
  KerberosError,
  type KerberosProblem,
} from "../../errors.ts";
import {
  encodeOid,
  GSS_S,
  HOSTBASED_SERVICE_OID,
  isGssError,
  type KerberosClient,
  kerberosProblem,
  type NegotiateContext,
  type NegotiateStep,
  SPNEGO_OID,
} from "./negotiate.ts";

/** The libraries tried, in order, by operating system. */
export const GSSAPI_LIBRARIES: Readonly<Record<string, readonly string[]>> = {
  linux: ["libgssapi_krb5.so.2"],
  darwin: [
    "/System/Library/Frameworks/GSS.framework/GSS",
    "libgssapi_krb5.dylib",
  ],
  freebsd: ["libgssapi_krb5.so.2", "libgssapi.so.10"],
};

// OM_uint32 *minor_status comes first in every call; names, credentials and
// contexts are opaque pointers, their out-parameters 8-byte slots.
const SYMBOLS = {
  gss_acquire_cred: {
    parameters: [
      "buffer", // OM_uint32 *minor_status
      "pointer", // gss_name_t desired_name
      "u32", // OM_uint32 time_req
      "pointer", // gss_OID_set desired_mechs
      "i32", // gss_cred_usage_t cred_usage
      "buffer", // gss_cred_id_t *output_cred_handle
      "pointer", // gss_OID_set *actual_mechs
      "buffer", // OM_uint32 *time_rec
    ],
    result: "u32",
  },
  gss_inquire_cred: {
    parameters: ["buffer", "pointer", "buffer", "buffer", "buffer", "pointer"],
    result: "u32",
  },
  gss_release_cred: { parameters: ["buffer", "buffer"], result: "u32" },
  gss_import_name: {
    parameters: ["buffer", "buffer", "buffer", "buffer"],
    result: "u32",
  },
  gss_display_name: {
    parameters: ["buffer", "pointer", "buffer", "pointer"],
    result: "u32",
  },
  gss_release_name: { parameters: ["buffer", "buffer"], result: "u32" },
  gss_init_sec_context: {
    parameters: [
      "buffer", // OM_uint32 *minor_status
      "pointer", // gss_cred_id_t claimant_cred_handle
      "buffer", // gss_ctx_id_t *context_handle
      "pointer", // gss_name_t target_name
      "buffer", // gss_OID mech_type
      "u32", // OM_uint32 req_flags
      "u32", // OM_uint32 time_req
      "pointer", // gss_channel_bindings_t input_chan_bindings
      "buffer", // gss_buffer_t input_token
      "pointer", // gss_OID *actual_mech_type
      "buffer", // gss_buffer_t output_token
      "pointer", // OM_uint32 *ret_flags
      "pointer", // OM_uint32 *time_rec
    ],
    result: "u32",
  },
  gss_delete_sec_context: {
    parameters: ["buffer", "buffer", "pointer"],
    result: "u32",
  },
  gss_display_status: {
    parameters: ["buffer", "u32", "i32", "pointer", "buffer", "buffer"],
    result: "u32",
  },
  gss_release_buffer: { parameters: ["buffer", "buffer"], result: "u32" },
  // An MIT and Heimdal extension: the default ticket cache's name.
  gss_krb5_ccache_name: {
    parameters: ["buffer", "pointer", "buffer"],
    result: "u32",
    optional: true,
  },
} as const;

type Gssapi = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

const GSS_C_INITIATE = 1;
const GSS_C_GSS_CODE = 1;
const GSS_C_MECH_CODE = 2;
const GSS_C_INDEFINITE = 0xffffffff;
const MAX_STATUS_MESSAGES = 8;

/**
 * The system's Kerberos through GSSAPI; the library is opened on first use.
 *
 * @example
 * ```ts
 * using context = systemKerberos.start("HTTP@proxy.corp");
 * const { token } = context.step();
 * ```
 */
export const systemKerberos: KerberosClient = {
  start(spn) {
    const gss = library();
    const { principal } = checkCredentials(gss, spn);
    return new GssContext(gss, spn, principal);
  },
  credentials() {
    let gss: Gssapi;
    try {
      gss = library();
    } catch (error) {
      if (error instanceof KerberosError) {
        return { cache: environment("KRB5CCNAME"), problem: error };
      }
      throw error;
    }
    const cache = ccacheName(gss) ?? environment("KRB5CCNAME");
    try {
      const { principal, lifetimeSeconds } = checkCredentials(gss);
      return { cache, principal, lifetimeSeconds };
    } catch (error) {
      if (error instanceof KerberosError) return { cache, problem: error };
      throw error;
    }
  },
};

let opened: Gssapi | KerberosError | undefined;

/** Opens the library once; a failure is kept, so that it is not retried per tunnel. */
function library(): Gssapi {
  opened ??= open();
  if (opened instanceof KerberosError) throw opened;
  return opened;
}

function open(): Gssapi | KerberosError {
  if (Deno.build.os === "windows") {
    return new KerberosError("unsupported-platform");
  }
  const names = GSSAPI_LIBRARIES[Deno.build.os] ?? GSSAPI_LIBRARIES.linux;
  const failures: string[] = [];
  for (const name of names) {
    try {
      // The handle lives as long as the process: see the module comment.
      return Deno.dlopen(name, SYMBOLS).symbols;
    } catch (error) {
      if (error instanceof Deno.errors.NotCapable) {
        return new KerberosError("ffi-denied", { cause: error });
      }
      failures.push(errorMessage(error));
    }
  }
  return new KerberosError("library-missing", { detail: failures.join("; ") });
}

/**
 * Acquires the default initiator credentials and reads their principal and
 * lifetime: a clearer failure than `gss_init_sec_context`'s, whose SPNEGO
 * layer only says it found no mechanism.
 */
function checkCredentials(
  gss: Gssapi,
  spn?: string,
): { principal?: string; lifetimeSeconds: number } {
  const minor = new Uint32Array(1);
  const cred = new BigUint64Array(1);
  const lifetime = new Uint32Array(1);
  try {
    const major = gss.gss_acquire_cred(
      minor,
      null,
      GSS_C_INDEFINITE,
      null,
      GSS_C_INITIATE,
      cred,
      null,
      lifetime,
    );
    if (isGssError(major)) {
      throw failure(gss, major, minor[0], spn, "no-ticket");
    }
    if (lifetime[0] === 0) {
      throw new KerberosError("expired", {
        spn,
        gss: {
          major: GSS_S.CREDENTIALS_EXPIRED,
          minor: 0,
          majorText: displayStatus(
            gss,
            GSS_S.CREDENTIALS_EXPIRED,
            GSS_C_GSS_CODE,
          ),
          minorText: "",
        },
      });
    }
    return {
      principal: credentialName(gss, cred),
      lifetimeSeconds: lifetime[0],
    };
  } finally {
    if (cred[0] !== 0n) gss.gss_release_cred(minor, cred);
  }
}

/** The principal of acquired credentials, or `undefined` when GSSAPI will not say. */
function credentialName(gss: Gssapi, cred: BigUint64Array): string | undefined {
  const minor = new Uint32Array(1);
  const name = new BigUint64Array(1);
  try {
    const major = gss.gss_inquire_cred(
      minor,
      pointer(cred[0]),
      name,
      null,
      null,
      null,
    );
    if (isGssError(major) || name[0] === 0n) return undefined;
    return displayName(gss, name[0]);
  } finally {
    if (name[0] !== 0n) gss.gss_release_name(minor, name);
  }
}

function displayName(gss: Gssapi, name: bigint): string | undefined {
  const minor = new Uint32Array(1);
  const text = new BufferDesc();
  try {
    const major = gss.gss_display_name(minor, pointer(name), text.desc, null);
    return isGssError(major) ? undefined : decode(text.read());
  } finally {
    text.release(gss);
  }
}

/** The default ticket cache's name, e.g. `FILE:/tmp/krb5cc_1000`. */
function ccacheName(gss: Gssapi): string | undefined {
  if (!gss.gss_krb5_ccache_name) return undefined;
  const minor = new Uint32Array(1);
  const previous = new BigUint64Array(1);
  // Setting no name keeps the default and hands back the current one.
  const major = gss.gss_krb5_ccache_name(minor, null, previous);
  if (isGssError(major) || previous[0] === 0n) return undefined;
  return Deno.UnsafePointerView.getCString(pointer(previous[0])!);
}

/** One security context: its imported target name and its handle. */
class GssContext implements NegotiateContext {
  readonly spn: string;
  readonly principal?: string;
  #gss: Gssapi;
  #name = new BigUint64Array(1);
  #context = new BigUint64Array(1);
  #released = false;

  constructor(gss: Gssapi, spn: string, principal?: string) {
    this.#gss = gss;
    this.spn = spn;
    this.principal = principal;
    const minor = new Uint32Array(1);
    const text = offHeap(new TextEncoder().encode(spn));
    const input = BufferDesc.of(text);
    const major = gss.gss_import_name(
      minor,
      input.desc,
      oidDesc(HOSTBASED_SERVICE_OID),
      this.#name,
    );
    if (isGssError(major)) throw failure(gss, major, minor[0], spn, "failed");
  }

  step(serverToken?: Uint8Array): NegotiateStep {
    if (this.#released) throw new Error("the security context was released");
    const gss = this.#gss;
    const minor = new Uint32Array(1);
    const input = serverToken ? BufferDesc.of(offHeap(serverToken)) : undefined;
    const output = new BufferDesc();
    try {
      const major = gss.gss_init_sec_context(
        minor,
        null,
        this.#context,
        pointer(this.#name[0]),
        oidDesc(SPNEGO_OID),
        0,
        0,
        null,
        input?.desc ?? null,
        null,
        output.desc,
        null,
        null,
      );
      if (isGssError(major)) {
        throw failure(gss, major, minor[0], this.spn, "failed");
      }
      return {
        token: output.read(),
        complete: (major & GSS_S.CONTINUE_NEEDED) === 0,
      };
    } finally {
      output.release(gss);
    }
  }

  [Symbol.dispose](): void {
    if (this.#released) return;
    this.#released = true;
    const minor = new Uint32Array(1);
    if (this.#context[0] !== 0n) {
      this.#gss.gss_delete_sec_context(minor, this.#context, null);
    }
    if (this.#name[0] !== 0n) this.#gss.gss_release_name(minor, this.#name);
  }
}

/** A KerberosError for a failed call, its status decoded. */
function failure(
  gss: Gssapi,
  major: number,
  minor: number,
  spn: string | undefined,
  fallback: KerberosProblem,
): KerberosError {
  const status: GssStatus = {
    major,
    minor,
    majorText: displayStatus(gss, major, GSS_C_GSS_CODE),
    minorText: minor === 0 ? "" : displayStatus(gss, minor, GSS_C_MECH_CODE),
  };
  const problem = kerberosProblem(status);
  return new KerberosError(problem === "failed" ? fallback : problem, {
    spn,
    gss: status,
  });
}

/** `gss_display_status`: every message of a status, joined. */
function displayStatus(gss: Gssapi, code: number, type: number): string {
  const minor = new Uint32Array(1);
  const context = new Uint32Array(1);
  const messages: string[] = [];
  for (let i = 0; i < MAX_STATUS_MESSAGES; i++) {
    const text = new BufferDesc();
    try {
      const major = gss.gss_display_status(
        minor,
        code,
        type,
        null,
        context,
        text.desc,
      );
      if (isGssError(major)) break;
      messages.push(decode(text.read()));
    } finally {
      text.release(gss);
    }
    if (context[0] === 0) break;
  }
  return messages.filter(Boolean).join("; ");
}

/**
 * A `gss_buffer_desc`: `size_t length` then `void *value`, both 8 bytes
 * on the 64-bit platforms Deno runs on.
 */
class BufferDesc {
  readonly desc = new Uint8Array(new ArrayBuffer(16));
  #view = new DataView(this.desc.buffer);
  // Keeps bytes that `desc` points into alive as long as it.
  #data?: Uint8Array;

  /** A descriptor of `data`, which must not move: see {@link offHeap}. */
  static of(data: Uint8Array): BufferDesc {
    const buffer = new BufferDesc();
    buffer.#data = data;
    buffer.#view.setBigUint64(0, BigInt(data.length), true);
    buffer.#view.setBigUint64(8, address(data), true);
    return buffer;
  }

  /** A copy of the bytes GSSAPI put in it. */
  read(): Uint8Array {
    const length = Number(this.#view.getBigUint64(0, true));
    const value = pointer(this.#view.getBigUint64(8, true));
    if (!value || length === 0) return new Uint8Array(0);
    return new Uint8Array(
      Deno.UnsafePointerView.getArrayBuffer(value, length).slice(0),
    );
  }

  /** Releases what GSSAPI allocated into it (nothing for one made by `of`). */
  release(gss: Gssapi): void {
    if (this.#data || this.#view.getBigUint64(8, true) === 0n) return;
    gss.gss_release_buffer(new Uint32Array(1), this.desc);
  }
}

const oids = new Map<string, Uint8Array>();
const oidElements: Uint8Array[] = [];

/**
 * A `gss_OID_desc` for `dotted`, made once and kept: `OM_uint32 length`,
 * then `void *elements`, at offset 8 (4 on macOS, whose headers pack it).
 */
function oidDesc(dotted: string): Uint8Array {
  let desc = oids.get(dotted);
  if (!desc) {
    const elements = offHeap(encodeOid(dotted));
    oidElements.push(elements);
    desc = new Uint8Array(new ArrayBuffer(16));
    const view = new DataView(desc.buffer);
    view.setUint32(0, elements.length, true);
    view.setBigUint64(
      Deno.build.os === "darwin" ? 4 : 8,
      address(elements),
      true,
    );
    oids.set(dotted, desc);
  }
  return desc;
}

/** A copy in its own ArrayBuffer, whose memory V8 never moves. */
function offHeap(bytes: Uint8Array): Uint8Array {
  const copy = new Uint8Array(new ArrayBuffer(bytes.length));
  copy.set(bytes);
  return copy;
}

function address(bytes: Uint8Array): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(bytes)));
}

function pointer(value: bigint): Deno.PointerValue {
  return Deno.UnsafePointer.create(value);
}

/** An environment variable, or `undefined` when the permission is missing. */
function environment(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

function decode(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes).replace(/\0+$/, "").trim();
}
