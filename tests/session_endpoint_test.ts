/**
 * A session endpoint against a sink whose backlog the test holds and
 * releases: frames stop at the high-water mark, and a sink that calls
 * flush once it drained is served at once.
 */
import assert from "node:assert/strict";
import {
  type FrameSink,
  SessionEndpoint,
  SINK_HIGH_WATER_BYTES,
} from "../lib/session/endpoint.ts";
import { Session } from "../lib/session/session.ts";

/** A sink that keeps what it is sent as its backlog until drained. */
class HeldSink implements FrameSink {
  sent = 0;
  backlog = 0;

  send(parts: readonly Uint8Array[]): void {
    for (const part of parts) {
      this.sent += part.length;
      this.backlog += part.length;
    }
  }
}

Deno.test("session endpoint: frames stop at the sink's high-water mark; a sink that drained and says so gets the next at once", async () => {
  const window = 4 << 20;
  const session = new Session({
    role: "client",
    sendBufferBytes: window,
    sessionBufferBytes: window,
  });
  session.connect();
  const endpoint = new SessionEndpoint(session);
  const sink = new HeldSink();
  endpoint.attach(sink);
  try {
    const stream = endpoint.open("origin.test", 80);
    endpoint.receive([{ type: "opened", stream: stream.id, window }]);
    assert.equal(await stream.write(new Uint8Array(3 << 20)), 3 << 20);
    assert.ok(sink.sent >= SINK_HIGH_WATER_BYTES, "up to the mark");
    assert.ok(sink.sent < 2 * SINK_HIGH_WATER_BYTES, "not past it");
    // The sink wrote everything out and says so: the next frames go now,
    // not when the endpoint would have looked at a full sink again.
    const before = sink.sent;
    sink.backlog = 0;
    endpoint.flush();
    assert.ok(sink.sent >= before + SINK_HIGH_WATER_BYTES);
  } finally {
    endpoint.detach();
  }
});
