// One request parser shared while heads arrive whole; a split head takes it, an error is
// cleared for the next head, and a server sees the same requests either way.
import assert from "node:assert/strict";
import { RequestParsers } from "../../server/request_parsers.ts";
import { HandshakeError } from "../../protocol/http/handshake_error.ts";

const enc = new TextEncoder();
const head = (path: string) => enc.encode(`GET ${path} HTTP/1.1\r\nHost: a\r\nX-Y: z\r\n\r\n`);

Deno.test("request parsers: shared for whole heads, taken for split ones", async (t) => {
  await t.step("whole heads, one after another, through the same parser", () => {
    const parsers = new RequestParsers(8192);
    const shared = parsers.shared;
    for (const path of ["/a", "/b"]) {
      const bytes = head(path);
      const r = shared.push(bytes, 0, bytes.length);
      assert.equal(r.kind, "complete");
      if (r.kind === "complete") {
        assert.equal(r.request.target, path);
        assert.deepEqual(r.request.headers, [["host", "a"], ["x-y", "z"]]);
      }
      assert.equal(parsers.shared, shared);
    }
  });

  await t.step("a split head keeps its parser; the next whole head gets a fresh one", () => {
    const parsers = new RequestParsers(8192);
    const split = head("/split");
    assert.equal(parsers.shared.push(split, 0, 10).kind, "incomplete");
    const kept = parsers.take();
    assert.notEqual(parsers.shared, kept);
    const whole = head("/whole");
    const w = parsers.shared.push(whole, 0, whole.length);
    assert.equal(w.kind === "complete" && w.request.target, "/whole");
    const r = kept.push(split, 10, split.length);
    assert.equal(r.kind === "complete" && r.request.target, "/split");
  });

  await t.step("after an error the shared parser is usable again once recovered", () => {
    const parsers = new RequestParsers(8192);
    const bad = enc.encode("GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n");
    const r = parsers.shared.push(bad, 0, bad.length);
    assert.equal(r.kind === "error" && r.status, 400);
    parsers.recover();
    const good = head("/ok");
    const g = parsers.shared.push(good, 0, good.length);
    assert.equal(g.kind === "complete" && g.request.target, "/ok");
  });

  await t.step("an invalid limit is refused", () => {
    assert.throws(() => new RequestParsers(4), HandshakeError);
  });
});
