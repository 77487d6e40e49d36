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
import sys

from websockets.exceptions import ConnectionClosed

from ws_client import upgrade


async def main(spec):
    ws, result = await upgrade(spec, "httptunneling.v2")
    if ws is None:
        return result
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
