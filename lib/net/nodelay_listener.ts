/**
 * `TCP_NODELAY` on a listening socket that Deno gives no way to set it on
 * (`Deno.listenTls`), through libc over FFI: the socket is the descriptor
 * of this process that listens (`SO_ACCEPTCONN`) on the port
 * (`getsockname`), and `setsockopt` sets the option. Linux copies a
 * listening socket's options to each socket it accepts, so every
 * connection accepted afterwards sends small writes at once instead of
 * waiting for the peer's delayed ACK (Nagle's algorithm).
 *
 * Linux only, and only with `--allow-ffi`; otherwise nothing is set and
 * the caller takes another way.
 *
 * @module
 */

// <sys/socket.h>, <netinet/in.h>, <netinet/tcp.h> on Linux.
const SOL_SOCKET = 1;
const SO_ACCEPTCONN = 30;
const IPPROTO_TCP = 6;
const TCP_NODELAY = 1;
const AF_INET = 2;
const AF_INET6 = 10;
// Room for any sockaddr; the port is bytes 2-3 of sockaddr_in and _in6.
const SOCKADDR_BYTES = 128;

/**
 * Descriptors looked at. POSIX gives a new socket the lowest free
 * descriptor, so a listener opened just before is below the number of
 * descriptors open, far below this.
 */
const MAX_DESCRIPTORS = 65_536;

const SYMBOLS = {
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  getsockopt: {
    parameters: ["i32", "i32", "i32", "buffer", "buffer"],
    result: "i32",
  },
  setsockopt: {
    parameters: ["i32", "i32", "i32", "buffer", "u32"],
    result: "i32",
  },
} as const;

type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

let libc: Libc | undefined;

/**
 * Sets `TCP_NODELAY` on this process's socket that listens on `port`.
 *
 * @param port The listening port.
 * @returns Whether it was set; `false` when this is not Linux, FFI is not
 *   allowed, or no such socket was found.
 */
export function setListenerNoDelay(port: number): boolean {
  if (Deno.build.os !== "linux") return false;
  try {
    if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
      return false;
    }
    // The handle lives as long as the process: one library, opened once.
    libc ??= Deno.dlopen("libc.so.6", SYMBOLS).symbols;
    const fd = listeningDescriptor(libc, port);
    if (fd === undefined) return false;
    const on = new Uint8Array(Int32Array.of(1).buffer);
    return libc.setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, on, 4) === 0;
  } catch {
    // No libc.so.6, or FFI refused: nothing was set.
    return false;
  }
}

function listeningDescriptor(libc: Libc, port: number): number | undefined {
  const address = new Uint8Array(SOCKADDR_BYTES);
  // sa_family, in the machine's byte order.
  const family = new Uint16Array(address.buffer, 0, 1);
  const addressLength = new Uint32Array(1);
  const value = new Int32Array(1);
  const valueBytes = new Uint8Array(value.buffer);
  const valueLength = new Uint32Array(1);
  for (let fd = 0; fd < MAX_DESCRIPTORS; fd++) {
    addressLength[0] = SOCKADDR_BYTES;
    // Fails for a descriptor that is not open or not a socket.
    if (
      libc.getsockname(
        fd,
        address,
        new Uint8Array(addressLength.buffer),
      ) !== 0
    ) continue;
    if (family[0] !== AF_INET && family[0] !== AF_INET6) continue;
    if (((address[2] << 8) | address[3]) !== port) continue;
    valueLength[0] = 4;
    if (
      libc.getsockopt(
          fd,
          SOL_SOCKET,
          SO_ACCEPTCONN,
          valueBytes,
          new Uint8Array(valueLength.buffer),
        ) === 0 && value[0] === 1
    ) return fd;
  }
  return undefined;
}
