"""A client of httptunneling's WebSocket tunnel protocol (httptunneling.v1),
written with python3-websockets, for the serve tests: an independent peer.

Reads one JSON object from argv[1]:
  url, token (optional), target (optional), ca (optional PEM path),
  send (bytes to send, as text), repeat (send that many times, default 1),
  eof (send "eof" after the data, default true), hold (seconds to wait
  after sending before the eof, unless the server closes first; default 0),
  extra_headers (optional dict), stall (read nothing for that many seconds,
  then drop the connection), ignore_window (send without waiting for
  acks, as a broken client would).
Prints one JSON object: status (101 or the refusal status), refusal,
received (bytes received, as text, when short), received_len, received_sha256,
eof (whether the server sent eof), acked (last ack), close_code, close_reason.
"""

import asyncio
import hashlib
import json
import ssl
import sys

import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatusCode

WINDOW = 1024 * 1024
CHUNK = 64 * 1024


async def upgrade(spec, subprotocol):
    """Connects as spec says (url, token, target, ca, extra_headers).

    Returns the WebSocket (None when refused) and the report so far: status
    (101 or the refusal status), refusal, protocol.
    """
    headers = dict(spec.get("extra_headers", {}))
    if "token" in spec:
        headers["Authorization"] = "Bearer " + spec["token"]
    if "target" in spec:
        headers["X-Httptunneling-Target"] = spec["target"]
    context = None
    if spec["url"].startswith("wss:"):
        context = ssl.create_default_context(cafile=spec.get("ca"))
    result = {"status": None, "refusal": None}
    try:
        ws = await websockets.connect(
            spec["url"],
            subprotocols=[subprotocol],
            extra_headers=headers,
            ssl=context,
            compression=None,
            ping_interval=None,
            open_timeout=20,
        )
    except InvalidStatusCode as error:
        result["status"] = error.status_code
        result["refusal"] = error.headers.get("X-Httptunneling-Refusal")
        return None, result
    result["status"] = 101
    result["protocol"] = ws.subprotocol
    return ws, result


async def main(spec):
    ws, result = await upgrade(spec, "httptunneling.v1")
    if ws is None:
        return result
    data = spec.get("send", "").encode()
    repeat = spec.get("repeat", 1)
    received = bytearray()
    digest = hashlib.sha256()
    state = {"acked": 0, "eof": False, "total": 0}
    acked = asyncio.Event()

    async def reader():
        try:
            async for message in ws:
                if isinstance(message, bytes):
                    state["total"] += len(message)
                    digest.update(message)
                    if len(received) < 65536:
                        received.extend(message[: 65536 - len(received)])
                elif message == "eof":
                    state["eof"] = True
                elif message.startswith("ack "):
                    state["acked"] = int(message[4:])
                    acked.set()
        except ConnectionClosed:
            pass

    if spec.get("stall"):
        # Reads nothing for a while, then leaves: the server must not buffer
        # what the target sends meanwhile.
        await asyncio.sleep(spec["stall"])
        # Dropped rather than closed: a close handshake would wait behind
        # the data queued toward us.
        ws.transport.abort()
        return result
    task = asyncio.create_task(reader())
    sent = 0
    for _ in range(repeat):
        for offset in range(0, len(data), CHUNK):
            piece = data[offset : offset + CHUNK]
            while (
                not spec.get("ignore_window")
                and sent + len(piece) - state["acked"] > WINDOW
            ):
                acked.clear()
                await asyncio.wait_for(acked.wait(), 30)
            try:
                await ws.send(piece)
            except ConnectionClosed:
                break
            sent += len(piece)
    if spec.get("hold", 0):
        # Ends early when the server closes the tunnel meanwhile.
        await asyncio.wait([task], timeout=spec["hold"])
    if spec.get("eof", True) and not task.done():
        try:
            await ws.send("eof")
        except ConnectionClosed:
            pass
    await asyncio.wait_for(task, 60)
    result.update(
        received=received.decode(errors="replace"),
        received_len=state["total"],
        received_sha256=digest.hexdigest(),
        eof=state["eof"],
        acked=state["acked"],
        sent=sent,
        close_code=ws.close_code,
        close_reason=ws.close_reason,
    )
    return result


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(json.loads(sys.argv[1])))))
