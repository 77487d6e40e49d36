/**
 * A WebSocket tunnel server written with Debian's python3-websockets, an
 * independent implementation of RFC 6455, speaking the tunnel protocol of
 * PROTOCOL-DRAFT.md with canned behaviours chosen by the target's host
 * name: `echo` (every binary message back, acks, `eof` answered with `eof`
 * and a 1000 close), `fragments` (a message in three fragments, then
 * `eof`), `reset` (a 1011 close after the first message), `ackless`
 * (never acks). Refusals as the protocol has them: token `good-token`,
 * path `/t`, targets `blocked…` (403), `unreachable…` (502), `busy…`
 * (503), `slow…` (504).
 * It pings every 200 ms and closes a client that does not answer. What it
 * saw goes to its stdout, one line each, for the tests to read.
 *
 * @module
 */

import { DEBIAN_PYTHON } from "./serve.ts";
import { eventually, within } from "./net.ts";

const SERVER_PY = `
import asyncio, http, ssl, sys
import websockets
from websockets.datastructures import Headers

TOKEN = "Bearer good-token"

def say(*words):
    print(*words, flush=True)

def refuse(status, kind, reason):
    return (http.HTTPStatus(status), Headers([("X-Httptunneling-Refusal", kind),
                             ("Content-Type", "text/plain")]),
            (reason + "\\n").encode())

async def process_request(path, headers):
    if path != "/t":
        return (http.HTTPStatus.NOT_FOUND, Headers(), b"not found\\n")
    if headers.get("Authorization") != TOKEN:
        say("refused auth")
        return refuse(401, "auth", "unknown token")
    target = headers.get("X-Httptunneling-Target", "")
    if target.startswith("blocked"):
        say("refused not-allowed", target)
        return refuse(403, "not-allowed", f"target {target} matches no allow rule")
    if target.startswith("unreachable"):
        return refuse(502, "unreachable", "cannot resolve unreachable.example")
    if target.startswith("busy"):
        return refuse(503, "busy", "65536 tunnels open: the limit")
    if target.startswith("slow"):
        return refuse(504, "timeout", "connect to slow.example:22 timed out")
    return None

async def handler(ws, path=None):
    target = ws.request_headers["X-Httptunneling-Target"]
    mode = target.split(":")[0]
    say("open", target)
    received = 0
    try:
        if mode == "fragments":
            await ws.send([b"frag-one ", b"frag-two ", b"frag-three"])
            await ws.send("eof")
        async for message in ws:
            if isinstance(message, bytes):
                received += len(message)
                if mode == "reset":
                    await ws.close(1011, "target reset")
                    return
                if mode == "echo":
                    await ws.send(message)
                if mode != "ackless":
                    await ws.send(f"ack {received}")
            elif message == "eof":
                say("eof", received)
                if mode == "echo":
                    await ws.send("eof")
                await ws.close(1000)
                return
            else:
                await ws.close(1002, "unknown text")
                return
    except websockets.ConnectionClosed:
        pass
    finally:
        say("close", ws.close_code, ws.close_reason, received)

async def main():
    context = None
    if len(sys.argv) > 2:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(sys.argv[1], sys.argv[2])
    async with websockets.serve(
        handler, "127.0.0.1", 0, subprotocols=["httptunneling.v1"],
        process_request=process_request, ssl=context,
        ping_interval=0.2, ping_timeout=2,
    ) as server:
        say("ready", server.sockets[0].getsockname()[1])
        await asyncio.Future()

asyncio.run(main())
`;

/** The python server, stopped by disposing it. */
export interface WsPeer extends AsyncDisposable {
  /** Its port on 127.0.0.1. */
  readonly port: number;
  /** What it printed so far, one entry per line. */
  readonly lines: string[];
  /** Waits for a line matching `pattern`. */
  waitFor(pattern: RegExp, what: string): Promise<string>;
}

/**
 * Starts the python server.
 *
 * @param tls A certificate and key file, for wss://.
 */
export async function startWsPeer(
  tls?: { cert: string; key: string },
): Promise<WsPeer> {
  const child = new Deno.Command(DEBIAN_PYTHON, {
    args: ["-c", SERVER_PY, ...(tls ? [tls.cert, tls.key] : [])],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const lines: string[] = [];
  const reading = (async () => {
    const decoder = child.stdout.pipeThrough(new TextDecoderStream());
    let partial = "";
    for await (const chunk of decoder) {
      const parts = (partial + chunk).split("\n");
      partial = parts.pop()!;
      lines.push(...parts);
    }
  })();
  const stop = async () => {
    try {
      child.kill("SIGKILL");
    } catch { /* already exited */ }
    await child.status;
    await reading;
  };
  const waitFor = (pattern: RegExp, what: string) =>
    eventually(() => lines.find((line) => pattern.test(line)), 10_000, what);
  try {
    const ready = await within(
      waitFor(/^ready \d+$/, "python websockets server ready"),
      15_000,
      "python websockets server",
    );
    return {
      port: Number(ready.split(" ")[1]),
      lines,
      waitFor,
      [Symbol.asyncDispose]: stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
