import assert from "node:assert/strict";
import { HandshakeError } from "../../../protocol/http/handshake_error.ts";
import {
  HttpResponseParser,
  type HttpResponseParserOptions,
  ParsedResponse,
} from "../../../protocol/http/response.ts";

import {
  assertErrorSticksUntilReset,
  feedEveryChunking,
  pushWhole,
} from "../../fixtures/chunking.ts";
import { type ResponseOutcome, responseOutcome } from "../../fixtures/http_outcomes.ts";
import { latin1 } from "../../fixtures/bytes.ts";

// Feeding harness (tests/fixtures/chunking.ts): whole, bytewise and seeded random chunkings,
// each chunk after random guard bytes and before three more; every run must agree.

let seedCounter = 1;

function parseAll(input: string, options?: HttpResponseParserOptions): ResponseOutcome {
  return feedEveryChunking(
    latin1(input),
    seedCounter++,
    () => new HttpResponseParser(options),
    responseOutcome,
    { after: 3 },
  ).view;
}

function expectComplete(input: string): Extract<ResponseOutcome, { kind: "complete" }> {
  const o = parseAll(input);
  assert.equal(o.kind, "complete", JSON.stringify(o));
  return o as Extract<ResponseOutcome, { kind: "complete" }>;
}

function expectError(input: string, message?: RegExp, tooLarge = false): void {
  const o = parseAll(input);
  assert.equal(o.kind, "error", JSON.stringify(o));
  if (o.kind !== "error") return;
  assert.equal(o.tooLarge, tooLarge);
  if (message) assert.match(o.message, message);
}

const ACCEPT = "HTTP/1.1 101 Switching Protocols\r\n" +
  "Upgrade: websocket\r\n" +
  "Connection: Upgrade\r\n" +
  "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

Deno.test("HttpResponseParser: valid heads", async (t) => {
  await t.step("RFC 6455 server handshake", () => {
    assert.deepEqual(expectComplete(ACCEPT), {
      kind: "complete",
      end: ACCEPT.length,
      version: "1.1",
      status: 101,
      reason: "Switching Protocols",
      headers: [
        ["upgrade", "websocket"],
        ["connection", "Upgrade"],
        ["sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="],
      ],
    });
  });

  await t.step("frames after the head are left to the caller", () => {
    assert.equal(expectComplete(ACCEPT + "\x81\x02hi\x88\x00").end, ACCEPT.length);
  });

  await t.step("empty reason with the space", () => {
    const o = expectComplete("HTTP/1.1 101 \r\nUpgrade: websocket\r\n\r\n");
    assert.equal(o.status, 101);
    assert.equal(o.reason, "");
  });

  await t.step("no space and no reason (lenient: reason carries no meaning)", () => {
    const o = expectComplete("HTTP/1.1 101\r\n\r\n");
    assert.equal(o.reason, "");
  });

  await t.step("reason with spaces, tabs and obs-text", () => {
    const o = expectComplete("HTTP/1.1 200 Tr\xe8s  bien\tok\r\n\r\n");
    assert.equal(o.reason, "Tr\u00e8s  bien\tok");
  });

  await t.step("status range bounds", () => {
    assert.equal(expectComplete("HTTP/1.1 100 Continue\r\n\r\n").status, 100);
    assert.equal(expectComplete("HTTP/1.1 599 X\r\n\r\n").status, 599);
  });

  await t.step("HTTP/1.0 and later 1.x minors", () => {
    assert.equal(expectComplete("HTTP/1.0 200 OK\r\n\r\n").version, "1.0");
    assert.equal(expectComplete("HTTP/1.2 200 OK\r\n\r\n").version, "1.1");
  });

  await t.step("header lookups", () => {
    const raw = "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\nX-E:\r\n\r\n";
    const r = pushWhole(new HttpResponseParser(), raw);
    assert.equal(r.kind, "complete");
    if (r.kind !== "complete") return;
    assert.deepEqual(r.response.getAll("Set-Cookie"), ["a=1", "b=2"]);
    assert.equal(r.response.get("SET-COOKIE"), "a=1, b=2");
    assert.equal(r.response.get("x-e"), "");
    assert.equal(r.response.has("x-f"), false);
    assert.ok(r.response instanceof ParsedResponse);
  });
});

Deno.test("HttpResponseParser: errors", async (t) => {
  const cases: Array<[string, string, RegExp?]> = [
    ["leading empty line (none tolerated in responses)", "\r\n" + ACCEPT, /empty line/],
    ["lowercase http", "http/1.1 101 Switching Protocols\r\n\r\n", /status line/],
    ["missing minor", "HTTP/1 101 Switching Protocols\r\n\r\n", /status line/],
    ["two-digit status", "HTTP/1.1 20 OK\r\n\r\n", /status line/],
    ["four-digit status", "HTTP/1.1 1011 X\r\n\r\n", /status line/],
    ["letters in status", "HTTP/1.1 1O1 X\r\n\r\n", /status line/],
    ["two spaces", "HTTP/1.1  101 X\r\n\r\n", /status line/],
    ["tab separator", "HTTP/1.1\t101 X\r\n\r\n", /status line/],
    ["status below 100", "HTTP/1.1 099 X\r\n\r\n", /out of range/],
    ["status above 599", "HTTP/1.1 600 X\r\n\r\n", /out of range/],
    ["HTTP/2.0", "HTTP/2.0 200 OK\r\n\r\n", /unsupported version/],
    ["HTTP/0.9", "HTTP/0.9 200 OK\r\n\r\n", /unsupported version/],
    ["control char in reason", "HTTP/1.1 200 O\x01K\r\n\r\n", /0x01/],
    ["bare LF after status line", "HTTP/1.1 101 X\nUpgrade: websocket\r\n\r\n", /bare LF/],
    ["obs-fold", "HTTP/1.1 101 X\r\nA: 1\r\n 2\r\n\r\n", /obs-fold/],
    ["space before colon", "HTTP/1.1 101 X\r\nUpgrade : websocket\r\n\r\n", /colon/],
    ["NUL in value", "HTTP/1.1 101 X\r\nUpgrade: web\x00socket\r\n\r\n", /0x00/],
    ["bare CR in value", "HTTP/1.1 101 X\r\nUpgrade: web\rsocket\r\n\r\n", /bare CR/],
    ["no colon", "HTTP/1.1 101 X\r\nUpgrade websocket\r\n\r\n", /colon|name/],
  ];
  for (const [name, raw, message] of cases) {
    await t.step(name, () => expectError(raw, message));
  }

  await t.step("errors are sticky until reset", () => {
    assertErrorSticksUntilReset(new HttpResponseParser(), "HTTP/9.9 200 OK\r\n\r\n", ACCEPT);
  });

  await t.step("invalid maxHeaderBytes", () => {
    assert.throws(
      () => new HttpResponseParser({ maxHeaderBytes: 0 }),
      (e) => e instanceof HandshakeError && e.code === "INVALID_OPTION",
    );
  });
});

Deno.test("HttpResponseParser: size limit", async (t) => {
  const head = (pad: number) =>
    `HTTP/1.1 101 Switching Protocols\r\nX-Pad: ${"p".repeat(pad)}\r\n\r\n`;
  const base = head(0).length;

  await t.step("exactly 8192 bytes is accepted", () => {
    assert.equal(expectComplete(head(8192 - base) + "\x81\x00").end, 8192);
  });

  await t.step("8193 bytes is refused as too large", () => {
    expectError(head(8193 - base), /8192/, true);
  });

  await t.step("an endless status line is cut off after exactly 8192 bytes", () => {
    const parser = new HttpResponseParser();
    const byte = new Uint8Array(1);
    const start = "HTTP/1.1 200 ";
    for (let i = 0; i < 8192; i++) {
      byte[0] = i < start.length ? start.charCodeAt(i) : 0x61;
      const r = parser.push(byte, 0, 1);
      if (i < 8191) assert.equal(r.kind, "incomplete");
      else assert.equal(r.kind === "error" && r.tooLarge, true);
    }
  });

  await t.step("custom limit", () => {
    assert.equal(parseAll(ACCEPT, { maxHeaderBytes: ACCEPT.length }).kind, "complete");
    const o = parseAll(ACCEPT, { maxHeaderBytes: ACCEPT.length - 1 });
    assert.equal(o.kind === "error" && o.tooLarge, true);
  });
});
