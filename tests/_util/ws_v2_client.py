"""A client of httptunneling's session protocol (httptunneling.v2) written
with python3-websockets, for the tests of serve's own WebSocket: an
independent peer that checks the framing (it refuses masked server frames).

Reads one JSON object from argv[1]:
  url, token, ca (optional PEM path), hello (the HELLO frame's bytes, hex),
  text (optional: send this text message after the WELCOME, which the
  server must close with 1002), ping (send a ping and wait for its pong,
  default true).
Prints one JSON object: status (101 or the refusal status), refusal,
protocol, welcome (the first binary message, hex), pong (whether the pong
came), close_code and close_reason (of the server's close frame).
"""

import asyncio
import json
import ssl
import sys

import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatusCode


async def main(spec):
    headers = {"Authorization": "Bearer " + spec["token"]}
    context = None
    if spec["url"].startswith("wss:"):
        context = ssl.create_default_context(cafile=spec.get("ca"))
    result = {"status": None, "refusal": None}
    try:
        ws = await websockets.connect(
            spec["url"],
            subprotocols=["httptunneling.v2"],
            extra_headers=headers,
            ssl=context,
            compression=None,
            ping_interval=None,
            open_timeout=20,
        )
    except InvalidStatusCode as error:
        result["status"] = error.status_code
        result["refusal"] = error.headers.get("X-Httptunneling-Refusal")
        return result
    result["status"] = 101
    result["protocol"] = ws.subprotocol
    await ws.send(bytes.fromhex(spec["hello"]))
    welcome = await asyncio.wait_for(ws.recv(), 10)
    result["welcome"] = welcome.hex() if isinstance(welcome, bytes) else None
    if spec.get("ping", True):
        waiter = await ws.ping(b"are you there")
        await asyncio.wait_for(waiter, 10)
        result["pong"] = True
    if "text" in spec:
        await ws.send(spec["text"])
        try:
            # The server closes; whatever it sent before is read past.
            while True:
                await asyncio.wait_for(ws.recv(), 10)
        except ConnectionClosed:
            pass
    else:
        await asyncio.wait_for(ws.close(1000, "bye"), 10)
    result["close_code"] = ws.close_code
    result["close_reason"] = ws.close_reason
    return result


print(json.dumps(asyncio.run(main(json.loads(sys.argv[1])))))
