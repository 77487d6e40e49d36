import assert from "node:assert/strict";
import { Inbox } from "../lib/net/inbox.ts";
import { within } from "./_util/net.ts";

Deno.test("inbox: a reader waits for bytes; read copies, readChunk hands over what read left", async () => {
  const inbox = new Inbox(1024, () => true);
  const buffer = new Uint8Array(2);
  const reading = inbox.read(buffer);
  inbox.push(Uint8Array.of(1, 2, 3));
  assert.equal(await within(reading, 1000, "the read"), 2);
  assert.deepEqual(buffer, Uint8Array.of(1, 2));
  assert.deepEqual(await inbox.readChunk(), Uint8Array.of(3));
});

Deno.test("inbox: the loop waits for room at the limit until a read makes it", async () => {
  const inbox = new Inbox(4, () => true);
  inbox.push(new Uint8Array(4));
  assert.ok(inbox.full);
  let roomMade = false;
  const room = inbox.room().then(() => roomMade = true);
  await Promise.resolve();
  assert.equal(roomMade, false);
  await inbox.read(new Uint8Array(1));
  await within(room, 1000, "room");
  assert.ok(!inbox.full);
});

Deno.test("inbox: once done, reads give the bytes left, then null; a failure rejects waiting reads", async () => {
  const state: { live: boolean; failure?: Error } = { live: true };
  const inbox = new Inbox(1024, () => {
    if (state.failure) throw state.failure;
    return state.live;
  });
  inbox.push(Uint8Array.of(7));
  state.live = false;
  inbox.wake();
  assert.deepEqual(await inbox.readChunk(), Uint8Array.of(7));
  assert.equal(await inbox.read(new Uint8Array(1)), null);

  state.live = true;
  const waiting = inbox.readChunk();
  state.failure = new Error("cut");
  inbox.wake();
  await assert.rejects(within(waiting, 1000, "the read"), /cut/);
});
