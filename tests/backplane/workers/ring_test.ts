/**
 * The shared-memory ring on its own: records in order across many wraps of a small ring,
 * pads at the end, a full ring refusing a reservation until the slowest consumer reads,
 * an absent consumer not waited for, eviction of an idle laggard (and never of a consumer
 * in the middle of a read), the "wants space" request.
 */

import assert from "node:assert/strict";
import {
  ABSENT,
  createRing,
  Drain,
  forceAbsent,
  RingReader,
  RingWriter,
} from "../../../backplane/workers/ring.ts";
import { readSeq, recordSize, writeRecord } from "../../../backplane/workers/records.ts";

const topic = new TextEncoder().encode("t");

function put(writer: RingWriter, seq: number, payloadLength: number): boolean {
  const size = recordSize(topic.length, payloadLength);
  const at = writer.reserve(size);
  if (at < 0) return false;
  writeRecord(writer.u8, writer.i32, at, 1, 1, seq, false, topic, new Uint8Array(payloadLength));
  writer.commit(size);
  return true;
}

function take(reader: RingReader, budget = 1 << 30): number[] {
  const seqs: number[] = [];
  reader.drain((_u8, i32, at) => seqs.push(readSeq(i32, at)), budget);
  return seqs;
}

Deno.test("ring: records arrive in order across many wraps, of varying sizes", () => {
  const sab = createRing(3, 65_536);
  const writer = new RingWriter(sab, 3, 0);
  const r1 = new RingReader(sab, 3, 1);
  const r2 = new RingReader(sab, 3, 2);
  r1.attach();
  r2.attach();
  const got1: number[] = [];
  const got2: number[] = [];
  let seq = 0;
  for (let round = 0; round < 200; round++) {
    for (let k = 0; k < 50; k++) {
      // Sizes that do not divide the ring: pads of every length at the end.
      if (!put(writer, seq + 1, (seq * 37) % 900)) break;
      seq++;
    }
    got1.push(...take(r1));
    got2.push(...take(r2));
  }
  assert.ok(seq > 5_000, `wrote ${seq}`);
  const expected = Array.from({ length: seq }, (_, i) => i + 1);
  assert.deepEqual(got1, expected);
  assert.deepEqual(got2, expected);
  assert.equal(writer.records, seq);
});

Deno.test("ring: a full ring refuses until the slowest consumer reads; an absent one is not waited for", () => {
  const sab = createRing(3, 65_536);
  const writer = new RingWriter(sab, 3, 0);
  const fast = new RingReader(sab, 3, 1);
  const slow = new RingReader(sab, 3, 2);
  fast.attach();
  slow.attach();
  let seq = 0;
  while (put(writer, ++seq, 1000)) take(fast);
  seq--;
  assert.ok(seq > 50 && seq < 70, `${seq} records of ~1 KiB in 64 KiB`);
  writer.wantSpace(true);
  const bits = slow.drain(() => {}, 8 * 1024);
  assert.equal(bits & Drain.MORE, Drain.MORE);
  assert.equal(bits & Drain.WAKE_PRODUCER, Drain.WAKE_PRODUCER, "asked to ring the producer");
  assert.ok(put(writer, ++seq, 1000), "room once the slow one read");
  // A consumer that leaves is no longer waited for.
  while (put(writer, ++seq, 1000)) take(fast);
  slow.detach();
  assert.ok(put(writer, seq, 1000));
  // A dead consumer is made absent whatever its state.
  forceAbsent(sab, 3, 1);
  for (let i = 0; i < 200; i++) assert.ok(put(writer, ++seq, 1000));
  assert.equal(ABSENT, 3);
});

Deno.test("ring: an idle laggard is evicted and skips ahead; a reading one never is", () => {
  const sab = createRing(3, 65_536);
  const writer = new RingWriter(sab, 3, 0);
  const fast = new RingReader(sab, 3, 1);
  const stuck = new RingReader(sab, 3, 2);
  fast.attach();
  stuck.attach();
  let seq = 0;
  while (put(writer, ++seq, 1000)) take(fast);
  // The stuck consumer is in the middle of a read: it must not be evicted.
  let evictedWhileReading = -1;
  stuck.drain(() => {
    if (evictedWhileReading < 0) evictedWhileReading = writer.evictFor(recordSize(1, 1000));
  }, 1000);
  assert.equal(evictedWhileReading, 0);
  while (put(writer, ++seq, 1000)) take(fast);
  assert.equal(writer.evictFor(recordSize(1, 1000)), 1);
  assert.ok(put(writer, seq, 1000));
  const last = seq;
  // The evicted one learns it at its next read and resumes at the end.
  const bits = stuck.drain(() => {}, 1 << 30);
  assert.equal(bits & Drain.LAGGED, Drain.LAGGED);
  assert.equal(stuck.lagged, 1);
  assert.ok(put(writer, last + 1, 10));
  assert.deepEqual(take(stuck), [last + 1]);
});
