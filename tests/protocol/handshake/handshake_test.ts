import assert from "node:assert/strict";
import { HandshakeError } from "../../../protocol/http/handshake_error.ts";
import {
  acceptKey,
  buildErrorResponse,
  buildUpgradeResponse,
  isValidKey,
  reasonPhrase,
  selectProtocol,
  serializeResponse,
  UPGRADE_ANSWER_LENGTH,
  type UpgradeResult,
  validateUpgrade,
  WEBSOCKET_GUID,
} from "../../../protocol/handshake/server.ts";
import {
  buildClientRequest,
  generateKey,
  validateUpgradeResponse,
} from "../../../protocol/handshake/client.ts";
import { HttpRequestParser, ParsedRequest } from "../../../protocol/http/request.ts";
import { HttpResponseParser, type ParsedResponse } from "../../../protocol/http/response.ts";

import {
  feedEveryChunking,
  headOutcome,
  type HeadResult,
  type PushParser,
  pushWhole,
} from "../../fixtures/chunking.ts";
import { latin1 } from "../../fixtures/bytes.ts";

// ---------------------------------------------------------------------------------------
// Feeding harness (tests/fixtures/chunking.ts): whole, bytewise and seeded random chunkings,
// each chunk after random LF guard bytes and before three more; every run must agree.

let seedCounter = 1;

/** Parses a head in every chunking; returns what `head` picks out of it and the index after it. */
function parseEvery<R extends HeadResult, T>(
  newParser: () => PushParser<R>,
  head: (result: Extract<R, { kind: "complete" }>) => T,
  bytes: Uint8Array,
): { value: T; end: number } {
  const { view } = feedEveryChunking(
    bytes,
    seedCounter++,
    newParser,
    (fed) => headOutcome(fed, (r) => ({ value: head(r) }), (r) => r),
    { fill: 0x0a, after: 3 },
  );
  assert.ok(view.kind === "complete", `head did not parse: ${JSON.stringify(view)}`);
  return { value: view.value, end: view.end };
}

const parseRequest = (bytes: Uint8Array): { value: ParsedRequest; end: number } =>
  parseEvery(() => new HttpRequestParser(), (r) => r.request, bytes);

const parseResponse = (bytes: Uint8Array): { value: ParsedResponse; end: number } =>
  parseEvery(() => new HttpResponseParser(), (r) => r.response, bytes);

const enc = new TextEncoder();
const dec = new TextDecoder();

function text(bytes: Uint8Array): string {
  return String.fromCharCode(...bytes);
}

function throwsCode(fn: () => unknown, code: string): void {
  assert.throws(fn, (e) => e instanceof HandshakeError && e.code === code, code);
}

// ---------------------------------------------------------------------------------------
// Server side

const SAMPLE_KEY = "dGhlIHNhbXBsZSBub25jZQ==";
// RFC 6455 §1.3: SHA-1 = b3 7a 4f 2c c0 62 4f 16 90 f6 46 06 cf 38 59 45 b2 be c4 ea.
const SAMPLE_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

const RFC_REQUEST = "GET /chat HTTP/1.1\r\n" +
  "Host: server.example.com\r\n" +
  "Upgrade: websocket\r\n" +
  "Connection: Upgrade\r\n" +
  `Sec-WebSocket-Key: ${SAMPLE_KEY}\r\n` +
  "Origin: http://example.com\r\n" +
  "Sec-WebSocket-Protocol: chat, superchat\r\n" +
  "Sec-WebSocket-Version: 13\r\n\r\n";

const BASE: Record<string, string> = {
  host: "Host: server.example.com",
  upgrade: "Upgrade: websocket",
  connection: "Connection: Upgrade",
  key: `Sec-WebSocket-Key: ${SAMPLE_KEY}`,
  version: "Sec-WebSocket-Version: 13",
};

/** A request from the base headers, some replaced or removed (null), plus extra lines. */
function upgradeRequest(
  overrides: Record<string, string | null> = {},
  extra: string[] = [],
  requestLine = "GET /chat HTTP/1.1",
): string {
  const lines = [requestLine];
  for (const v of Object.values({ ...BASE, ...overrides })) if (v !== null) lines.push(v);
  return [...lines, ...extra, "", ""].join("\r\n");
}

/** Parses `raw` in every chunking, then validates it. */
function validate(raw: string): UpgradeResult {
  return validateUpgrade(parseRequest(latin1(raw)).value);
}

function expectReject(raw: string, status: number, message?: RegExp): UpgradeResult {
  const r = validate(raw);
  assert.equal(r.ok, false, `expected a rejection: ${raw}`);
  if (!r.ok) {
    assert.equal(r.status, status, r.message);
    if (message) assert.match(r.message, message);
  }
  return r;
}

function expectAccept(raw: string): { key: string; protocols: string[]; extensions: string[] } {
  const r = validate(raw);
  assert.ok(r.ok, r.ok ? "" : `${r.status} ${r.message}`);
  return r;
}

function b64(n: number): string {
  return btoa(String.fromCharCode(...new Uint8Array(n).map((_, i) => i * 37 + 1)));
}

Deno.test("acceptKey", async (t) => {
  await t.step("RFC 6455 sample", () => {
    assert.equal(acceptKey(SAMPLE_KEY), SAMPLE_ACCEPT);
    const digest = Uint8Array.from(atob(SAMPLE_ACCEPT), (c) => c.charCodeAt(0));
    assert.deepEqual(
      [...digest],
      [
        0xb3,
        0x7a,
        0x4f,
        0x2c,
        0xc0,
        0x62,
        0x4f,
        0x16,
        0x90,
        0xf6,
        0x46,
        0x06,
        0xcf,
        0x38,
        0x59,
        0x45,
        0xb2,
        0xbe,
        0xc4,
        0xea,
      ],
    );
  });

  await t.step("second well-known vector", () => {
    assert.equal(acceptKey("x3JJHMbDL1EzLkh9GBhXDw=="), "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
  });

  await t.step("agrees with WebCrypto on random keys", async () => {
    for (let i = 0; i < 20; i++) {
      const key = generateKey();
      const digest = await crypto.subtle.digest("SHA-1", enc.encode(key + WEBSOCKET_GUID));
      assert.equal(acceptKey(key), btoa(String.fromCharCode(...new Uint8Array(digest))));
    }
  });
});

Deno.test("isValidKey", async (t) => {
  await t.step("valid keys", () => {
    assert.equal(isValidKey(SAMPLE_KEY), true);
    assert.equal(isValidKey(b64(16)), true);
    assert.equal(isValidKey("AAAAAAAAAAAAAAAAAAAAAA=="), true);
    assert.equal(isValidKey("++++++++++++++++++++/w=="), true);
  });
  const bad: Array<[string, string]> = [
    ["15 bytes", b64(15)],
    ["17 bytes", b64(17)],
    ["empty", ""],
    ["missing padding", SAMPLE_KEY.slice(0, 22)],
    ["one pad char", SAMPLE_KEY.slice(0, 23)],
    ["three pad chars", SAMPLE_KEY.slice(0, 21) + "==="],
    ["bad char", "dGhlIHNhbXBsZSBub25j*Q=="],
    ["url-safe alphabet", "dGhlIHNhbXBsZSBub25j-Q=="],
    ["space inside", "dGhlIHNhbXBsZSBub25j Q=="],
    ["non-ASCII", "dGhlIHNhbXBsZSBub25jé=="],
    ["non-canonical last char", "dGhlIHNhbXBsZSBub25jZR=="],
    ["padding in the middle", "dGhlIHNhbXBsZS==ub25jZQ=="],
    ["trailing garbage", SAMPLE_KEY + "x"],
  ];
  for (const [name, key] of bad) {
    await t.step(name, () => assert.equal(isValidKey(key), false, key));
  }
});

Deno.test("validateUpgrade: accepted handshakes", async (t) => {
  await t.step("RFC 6455 sample handshake", () => {
    assert.deepEqual(validate(RFC_REQUEST), {
      ok: true,
      key: SAMPLE_KEY,
      protocols: ["chat", "superchat"],
      extensions: [],
    });
  });

  await t.step("Connection: keep-alive, Upgrade (Firefox)", () => {
    expectAccept(upgradeRequest({ connection: "Connection: keep-alive, Upgrade" }));
  });

  await t.step("Connection split over two lines", () => {
    expectAccept(
      upgradeRequest({ connection: "Connection: keep-alive" }, ["Connection: Upgrade"]),
    );
  });

  await t.step("case-insensitive names and tokens", () => {
    expectAccept(
      upgradeRequest({
        host: "HOST: server.example.com",
        upgrade: "UPGRADE: WebSocket",
        connection: "cOnNeCtIoN: UPGRADE",
        key: `SEC-WEBSOCKET-KEY: ${SAMPLE_KEY}`,
        version: "sec-websocket-version: 13",
      }),
    );
  });

  await t.step("Upgrade list containing websocket", () => {
    expectAccept(upgradeRequest({ upgrade: "Upgrade: h2c, websocket" }));
  });

  await t.step("surrounding whitespace in values", () => {
    expectAccept(
      upgradeRequest({
        version: "Sec-WebSocket-Version:  13\t",
        key: `Sec-WebSocket-Key:\t${SAMPLE_KEY} `,
      }),
    );
  });

  await t.step("Content-Length: 0 is not a body", () => {
    expectAccept(upgradeRequest({}, ["Content-Length: 0"]));
  });

  await t.step("no protocols offered", () => {
    assert.deepEqual(expectAccept(upgradeRequest()).protocols, []);
  });

  await t.step("protocols: lists, lines, whitespace and empty elements", () => {
    const r = expectAccept(
      upgradeRequest({}, [
        "Sec-WebSocket-Protocol: chat ,\tsuperchat",
        "Sec-WebSocket-Protocol: , v2.chat+json,",
        "Sec-WebSocket-Protocol:",
      ]),
    );
    assert.deepEqual(r.protocols, ["chat", "superchat", "v2.chat+json"]);
  });

  await t.step("protocols are case-sensitive (Chat and chat are distinct)", () => {
    const r = expectAccept(upgradeRequest({}, ["Sec-WebSocket-Protocol: chat, Chat"]));
    assert.deepEqual(r.protocols, ["chat", "Chat"]);
  });

  await t.step("extensions are reported by name and declined", () => {
    const r = expectAccept(
      upgradeRequest({}, [
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
        'Sec-WebSocket-Extensions: x-webkit-deflate-frame, foo; a="1,2", bad ext',
      ]),
    );
    assert.deepEqual(r.extensions, ["permessage-deflate", "x-webkit-deflate-frame", "foo"]);
    const response = text(buildUpgradeResponse({ key: r.key }));
    assert.ok(!/extensions/i.test(response));
  });

  await t.step("hand-built request (no parser)", () => {
    const req = new ParsedRequest({
      method: "GET",
      target: "/",
      version: "1.1",
      headers: [
        ["Host", "h"],
        ["Upgrade", "websocket"],
        ["Connection", "upgrade"],
        ["Sec-WebSocket-Key", SAMPLE_KEY],
        ["Sec-WebSocket-Version", "13"],
      ],
    });
    assert.equal(validateUpgrade(req).ok, true);
  });
});

Deno.test("validateUpgrade: rejected handshakes", async (t) => {
  await t.step("POST → 405 with Allow: GET", () => {
    const r = expectReject(upgradeRequest({}, [], "POST /chat HTTP/1.1"), 405);
    assert.deepEqual(!r.ok && r.headers, [["Allow", "GET"]]);
  });

  await t.step("lowercase get → 405 (methods are case-sensitive)", () => {
    expectReject(upgradeRequest({}, [], "get /chat HTTP/1.1"), 405);
  });

  await t.step("HEAD → 405", () => {
    expectReject(upgradeRequest({}, [], "HEAD / HTTP/1.1"), 405);
  });

  await t.step("HTTP/1.0 → 400", () => {
    expectReject(upgradeRequest({}, [], "GET /chat HTTP/1.0"), 400, /HTTP\/1\.1/);
  });

  await t.step("duplicate Host is refused by the parser", () => {
    const raw = upgradeRequest({}, ["Host: other"]);
    const r = pushWhole(new HttpRequestParser(), raw);
    assert.deepEqual(r, { kind: "error", status: 400, message: "more than one Host header field" });
  });

  await t.step("no Host is refused by the parser", () => {
    const raw = upgradeRequest({ host: null });
    const r = pushWhole(new HttpRequestParser(), raw);
    assert.equal(r.kind === "error" && r.status, 400);
  });

  await t.step("Host count is re-checked on hand-built requests", () => {
    for (const hosts of [[], [["host", "a"], ["host", "a"]]] as Array<Array<[string, string]>>) {
      const req = new ParsedRequest({
        method: "GET",
        target: "/",
        version: "1.1",
        headers: [
          ...hosts,
          ["upgrade", "websocket"],
          ["connection", "upgrade"],
          ["sec-websocket-key", SAMPLE_KEY],
          ["sec-websocket-version", "13"],
        ],
      });
      const r = validateUpgrade(req);
      assert.equal(!r.ok && r.status, 400);
    }
  });

  const rejects: Array<[string, Record<string, string | null>, string[], number, RegExp?]> = [
    ["Upgrade missing", { upgrade: null }, [], 400, /Upgrade/],
    ["Upgrade: h2c", { upgrade: "Upgrade: h2c" }, [], 400, /Upgrade/],
    ["Upgrade: websocketx", { upgrade: "Upgrade: websocketx" }, [], 400],
    ["Upgrade: web socket", { upgrade: "Upgrade: web socket" }, [], 400],
    ["Connection missing", { connection: null }, [], 400, /Connection/],
    ["Connection: keep-alive", { connection: "Connection: keep-alive" }, [], 400, /Connection/],
    ["Connection: upgrades", { connection: "Connection: upgrades" }, [], 400],
    ["Connection: close", { connection: "Connection: close" }, [], 400],
    ["Content-Length: 5", {}, ["Content-Length: 5"], 400, /body/],
    ["Content-Length: abc", {}, ["Content-Length: abc"], 400, /body.*Content-Length/],
    ["Content-Length conflicting", {}, ["Content-Length: 0", "Content-Length: 1"], 400, /body/],
    ["Transfer-Encoding: chunked", {}, ["Transfer-Encoding: chunked"], 400, /body/],
    ["Transfer-Encoding: gzip", {}, ["Transfer-Encoding: gzip"], 400, /body/],
    ["Transfer-Encoding: identity", {}, ["Transfer-Encoding: identity"], 400, /body/],
    ["version 8", { version: "Sec-WebSocket-Version: 8" }, [], 426],
    ["version 12", { version: "Sec-WebSocket-Version: 12" }, [], 426],
    ["version 013", { version: "Sec-WebSocket-Version: 013" }, [], 426],
    ["version list", { version: "Sec-WebSocket-Version: 13, 8" }, [], 426],
    ["version empty", { version: "Sec-WebSocket-Version:" }, [], 426],
    ["version missing", { version: null }, [], 426],
    ["version repeated", {}, ["Sec-WebSocket-Version: 13"], 400, /repeated/],
    ["key missing", { key: null }, [], 400, /missing Sec-WebSocket-Key/],
    ["key repeated", {}, [`Sec-WebSocket-Key: ${SAMPLE_KEY}`], 400, /repeated/],
    ["key repeated different", {}, [`Sec-WebSocket-Key: ${b64(16)}`], 400, /repeated/],
    ["key of 15 bytes", { key: `Sec-WebSocket-Key: ${b64(15)}` }, [], 400, /16 bytes/],
    ["key of 17 bytes", { key: `Sec-WebSocket-Key: ${b64(17)}` }, [], 400, /16 bytes/],
    ["key with bad chars", { key: "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j*Q==" }, [], 400],
    ["key without padding", { key: "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ" }, [], 400],
    ["key non-canonical", { key: "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR==" }, [], 400],
    ["key empty", { key: "Sec-WebSocket-Key:" }, [], 400],
    ["protocol with slash", {}, ["Sec-WebSocket-Protocol: chat/1"], 400, /subprotocol/],
    ["protocol with space", {}, ["Sec-WebSocket-Protocol: a b"], 400, /subprotocol/],
    ["protocol quoted", {}, ['Sec-WebSocket-Protocol: "chat"'], 400, /subprotocol/],
    ["protocol repeated", {}, ["Sec-WebSocket-Protocol: chat, chat"], 400, /twice/],
    [
      "protocol repeated across lines",
      {},
      [
        "Sec-WebSocket-Protocol: chat",
        "Sec-WebSocket-Protocol: chat",
      ],
      400,
      /twice/,
    ],
  ];
  for (const [name, overrides, extra, status, message] of rejects) {
    await t.step(name, () => {
      expectReject(upgradeRequest(overrides, extra), status, message);
    });
  }

  await t.step("426 carries Sec-WebSocket-Version: 13", () => {
    const r = expectReject(upgradeRequest({ version: "Sec-WebSocket-Version: 8" }), 426);
    assert.deepEqual(!r.ok && r.headers, [["Sec-WebSocket-Version", "13"]]);
  });

  await t.step("version is checked before the key (old clients get 426)", () => {
    expectReject(upgradeRequest({ version: "Sec-WebSocket-Version: 8", key: null }), 426);
  });

  await t.step("rejections turn into complete error responses", () => {
    const r = expectReject(upgradeRequest({ version: "Sec-WebSocket-Version: 8" }), 426);
    if (r.ok) return;
    const bytes = buildErrorResponse(r.status, { headers: r.headers, body: r.message, date: null });
    const res = parseResponse(bytes).value;
    assert.equal(res.status, 426);
    assert.equal(res.reason, "Upgrade Required");
    assert.equal(res.get("sec-websocket-version"), "13");
    assert.equal(res.get("connection"), "close");
  });
});

Deno.test("buildUpgradeResponse", async (t) => {
  await t.step("RFC 6455 sample with a protocol, exact bytes", () => {
    assert.equal(
      text(buildUpgradeResponse({ key: SAMPLE_KEY, protocol: "chat" })),
      "HTTP/1.1 101 Switching Protocols\r\n" +
        "Upgrade: websocket\r\n" +
        "Connection: Upgrade\r\n" +
        `Sec-WebSocket-Accept: ${SAMPLE_ACCEPT}\r\n` +
        "Sec-WebSocket-Protocol: chat\r\n\r\n",
    );
  });

  await t.step("without a protocol", () => {
    const expected = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" +
      `Connection: Upgrade\r\nSec-WebSocket-Accept: ${SAMPLE_ACCEPT}\r\n\r\n`;
    assert.equal(text(buildUpgradeResponse({ key: SAMPLE_KEY })), expected);
    assert.equal(text(buildUpgradeResponse({ key: SAMPLE_KEY, protocol: null })), expected);
  });

  await t.step("the common answer goes into a scratch buffer of its length, reused", () => {
    const scratch = new Uint8Array(UPGRADE_ANSWER_LENGTH);
    const first = buildUpgradeResponse({ key: SAMPLE_KEY }, scratch);
    assert.equal(first, scratch);
    assert.equal(text(first), text(buildUpgradeResponse({ key: SAMPLE_KEY })));
    const other = "x3JJHMbDL1EzLkh9GBhXDw==";
    assert.equal(buildUpgradeResponse({ key: other }, scratch), scratch);
    assert.match(text(scratch), new RegExp(`Sec-WebSocket-Accept: ${acceptKey(other)}\r\n`));
    // Any other answer, or a scratch of the wrong size, is a fresh buffer.
    assert.notEqual(buildUpgradeResponse({ key: SAMPLE_KEY, protocol: "chat" }, scratch), scratch);
    const small = new Uint8Array(8);
    assert.notEqual(buildUpgradeResponse({ key: SAMPLE_KEY }, small), small);
  });

  await t.step("extra headers in every shape, order and repeats kept", () => {
    const tail = (init: HeadersInit) =>
      text(buildUpgradeResponse({ key: SAMPLE_KEY, headers: init })).split("\r\n").slice(4);
    assert.deepEqual(tail([["Set-Cookie", "a=1"], ["Set-Cookie", "b=2"]]), [
      "Set-Cookie: a=1",
      "Set-Cookie: b=2",
      "",
      "",
    ]);
    assert.deepEqual(tail({ "X-Server": " fdws " }), ["X-Server: fdws", "", ""]);
    assert.deepEqual(tail(new Headers({ "X-A": "1" })), ["x-a: 1", "", ""]);
  });

  await t.step("latin1 header values are sent byte for byte", () => {
    const bytes = buildUpgradeResponse({ key: SAMPLE_KEY, headers: { "X-L": "caf\u00e9" } });
    assert.ok(text(bytes).includes("X-L: caf\xe9\r\n"));
    assert.equal(bytes.length, text(bytes).length);
  });

  await t.step("header injection is refused", () => {
    for (
      const headers of [
        { "X-A": "1\r\nSec-WebSocket-Extensions: permessage-deflate" },
        { "X-A": "1\n" },
        { "X-A": "\r" },
        { "X-A": "a\0" },
        [["X-A\r\nX-B", "1"]],
      ] as HeadersInit[]
    ) {
      throwsCode(() => buildUpgradeResponse({ key: SAMPLE_KEY, headers }), "HEADER_INJECTION");
    }
  });

  await t.step("invalid header names and values", () => {
    throwsCode(
      () => buildUpgradeResponse({ key: SAMPLE_KEY, headers: { "X A": "1" } }),
      "INVALID_HEADER",
    );
    throwsCode(
      () => buildUpgradeResponse({ key: SAMPLE_KEY, headers: { "X-A": "\u20ac" } }),
      "INVALID_HEADER",
    );
  });

  await t.step("handshake headers cannot be overridden", () => {
    for (
      const name of [
        "Upgrade",
        "connection",
        "Sec-WebSocket-Accept",
        "Sec-WebSocket-Protocol",
        "Sec-WebSocket-Extensions",
        "Sec-WebSocket-Version",
        "Content-Length",
        "Transfer-Encoding",
      ]
    ) {
      throwsCode(
        () => buildUpgradeResponse({ key: SAMPLE_KEY, headers: [[name, "x"]] }),
        "RESERVED_HEADER",
      );
    }
  });

  await t.step("the protocol must be a token", () => {
    for (const protocol of ["", "a b", "a,b", "chat\r\nX: 1"]) {
      throwsCode(() => buildUpgradeResponse({ key: SAMPLE_KEY, protocol }), "INVALID_PROTOCOL");
    }
  });

  await t.step("the protocol must be among the offered ones when given", () => {
    throwsCode(
      () => buildUpgradeResponse({ key: SAMPLE_KEY, protocol: "mqtt", offered: ["chat"] }),
      "PROTOCOL_NOT_OFFERED",
    );
    throwsCode(
      () => buildUpgradeResponse({ key: SAMPLE_KEY, protocol: "chat", offered: [] }),
      "PROTOCOL_NOT_OFFERED",
    );
    assert.ok(
      text(buildUpgradeResponse({ key: SAMPLE_KEY, protocol: "chat", offered: ["x", "chat"] }))
        .includes("Sec-WebSocket-Protocol: chat\r\n"),
    );
  });

  await t.step("an invalid key is refused", () => {
    throwsCode(() => buildUpgradeResponse({ key: b64(15) }), "INVALID_KEY");
    throwsCode(() => buildUpgradeResponse({ key: "" }), "INVALID_KEY");
  });
});

Deno.test("selectProtocol", async (t) => {
  await t.step("picks among the offered ones", () => {
    assert.equal(selectProtocol(["chat", "superchat"], "superchat"), "superchat");
  });
  await t.step("none is always fine", () => {
    assert.equal(selectProtocol(["chat"], null), null);
    assert.equal(selectProtocol([], undefined), null);
  });
  await t.step("unoffered picks throw", () => {
    throwsCode(() => selectProtocol(["chat"], "Chat"), "PROTOCOL_NOT_OFFERED");
    throwsCode(() => selectProtocol([], "chat"), "PROTOCOL_NOT_OFFERED");
  });
});

Deno.test("buildErrorResponse", async (t) => {
  await t.step("exact bytes, body defaults to the reason phrase", () => {
    assert.equal(
      text(buildErrorResponse(400, { date: null })),
      "HTTP/1.1 400 Bad Request\r\n" +
        "Connection: close\r\n" +
        "Content-Type: text/plain; charset=utf-8\r\n" +
        "Content-Length: 11\r\n\r\n" +
        "Bad Request",
    );
  });

  await t.step("405 with Allow", () => {
    assert.equal(
      text(buildErrorResponse(405, { headers: [["Allow", "GET"]], date: null })),
      "HTTP/1.1 405 Method Not Allowed\r\n" +
        "Connection: close\r\n" +
        "Content-Type: text/plain; charset=utf-8\r\n" +
        "Content-Length: 18\r\n" +
        "Allow: GET\r\n\r\n" +
        "Method Not Allowed",
    );
  });

  await t.step("Date: fixed, default now, omitted", () => {
    const fixed = text(
      buildErrorResponse(404, { date: new Date(Date.UTC(1994, 10, 6, 8, 49, 37)) }),
    );
    assert.ok(fixed.includes("\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n"));
    const now = text(buildErrorResponse(404));
    assert.match(
      now,
      /\r\nDate: [A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT\r\n/,
    );
    assert.ok(!text(buildErrorResponse(404, { date: null })).includes("Date:"));
  });

  await t.step("UTF-8 body length", () => {
    const bytes = buildErrorResponse(400, { body: "clé ✓", date: null });
    const s = dec.decode(bytes);
    assert.ok(s.includes("Content-Length: 8\r\n"));
    assert.ok(s.endsWith("\r\n\r\nclé ✓"));
  });

  await t.step("empty body", () => {
    const s = text(buildErrorResponse(503, { body: "", date: null }));
    assert.ok(s.endsWith("Content-Length: 0\r\n\r\n"));
  });

  await t.step("Content-Type can be overridden", () => {
    const s = text(buildErrorResponse(400, {
      headers: { "Content-Type": "application/json" },
      body: "{}",
      date: null,
    }));
    assert.ok(s.includes("Content-Type: application/json\r\n"));
    assert.ok(!s.includes("text/plain"));
  });

  await t.step("status without a reason phrase", () => {
    const s = text(buildErrorResponse(599, { date: null }));
    assert.ok(s.startsWith("HTTP/1.1 599 \r\n"));
    assert.ok(s.endsWith("\r\n\r\n599"));
  });

  await t.step("every response parses back, in every chunking", () => {
    for (const status of [400, 403, 404, 405, 426, 431, 500, 503, 505]) {
      const bytes = buildErrorResponse(status, { date: null });
      const { value, end } = parseResponse(bytes);
      assert.equal(value.status, status);
      assert.equal(value.reason, reasonPhrase(status));
      assert.equal(Number(value.get("content-length")), bytes.length - end);
    }
  });

  await t.step("invalid statuses", () => {
    for (const status of [0, 99, 101, 199, 204, 205, 304, 600, 400.5, Number.NaN]) {
      throwsCode(() => buildErrorResponse(status), "INVALID_STATUS");
    }
  });

  await t.step("managed headers cannot be overridden", () => {
    for (const name of ["Connection", "content-length", "Transfer-Encoding"]) {
      throwsCode(() => buildErrorResponse(400, { headers: [[name, "1"]] }), "RESERVED_HEADER");
    }
  });

  await t.step("header injection", () => {
    throwsCode(
      () => buildErrorResponse(302, { headers: { Location: "/x\r\nSet-Cookie: a=1" } }),
      "HEADER_INJECTION",
    );
  });
});

Deno.test("serializeResponse", async (t) => {
  await t.step("text response, exact bytes", async () => {
    assert.equal(
      text(await serializeResponse(new Response("hello"), { date: null })),
      "HTTP/1.1 200 OK\r\n" +
        "content-type: text/plain;charset=UTF-8\r\n" +
        "Connection: close\r\n" +
        "Content-Length: 5\r\n\r\n" +
        "hello",
    );
  });

  await t.step("keepAlive omits Connection: close", async () => {
    const s = text(await serializeResponse(new Response("x"), { keepAlive: true, date: null }));
    assert.ok(!s.includes("Connection"));
    assert.ok(s.endsWith("Content-Length: 1\r\n\r\nx"));
  });

  await t.step("binary body and UTF-8 text are counted in bytes", async () => {
    const bin = await serializeResponse(new Response(Uint8Array.of(0, 1, 2, 255)), { date: null });
    assert.deepEqual([...bin.subarray(bin.length - 4)], [0, 1, 2, 255]);
    assert.ok(text(bin).includes("Content-Length: 4\r\n"));
    const utf = await serializeResponse(new Response("✓"), { date: null });
    assert.ok(text(utf).includes("Content-Length: 3\r\n"));
  });

  await t.step("stream body", async () => {
    const stream = ReadableStream.from([enc.encode("ab"), enc.encode("cd")]);
    const s = text(await serializeResponse(new Response(stream), { date: null }));
    assert.ok(s.endsWith("Content-Length: 4\r\n\r\nabcd"));
  });

  await t.step("no body: Content-Length: 0", async () => {
    const s = text(await serializeResponse(new Response(null), { date: null }));
    assert.ok(s.endsWith("Content-Length: 0\r\n\r\n"));
  });

  await t.step("HEAD: length of the body, no body bytes", async () => {
    const s = text(await serializeResponse(new Response("hello"), { head: true, date: null }));
    assert.ok(s.endsWith("Content-Length: 5\r\n\r\n"));
  });

  await t.step("HEAD: the handler's Content-Length is kept when it gave no body", async () => {
    const res = new Response(null, { headers: { "Content-Length": "42" } });
    const s = text(await serializeResponse(res, { head: true, date: null }));
    assert.ok(s.endsWith("Content-Length: 42\r\n\r\n"));
  });

  await t.step("204: no Content-Length, no body", async () => {
    const res = new Response(null, { status: 204, headers: { "Content-Length": "5" } });
    const s = text(await serializeResponse(res, { date: null }));
    assert.ok(s.startsWith("HTTP/1.1 204 No Content\r\n"));
    assert.ok(!/content-length/i.test(s));
    assert.ok(s.endsWith("Connection: close\r\n\r\n"));
  });

  await t.step("205: Content-Length: 0", async () => {
    const s = text(await serializeResponse(new Response(null, { status: 205 }), { date: null }));
    assert.ok(s.endsWith("Content-Length: 0\r\n\r\n"));
  });

  await t.step("304: the handler's Content-Length is kept, no body", async () => {
    const withLength = new Response(null, { status: 304, headers: { "Content-Length": "9" } });
    let s = text(await serializeResponse(withLength, { date: null }));
    assert.ok(s.startsWith("HTTP/1.1 304 Not Modified\r\n"));
    assert.ok(s.endsWith("Content-Length: 9\r\n\r\n"));
    s = text(await serializeResponse(new Response(null, { status: 304 }), { date: null }));
    assert.ok(!s.includes("Content-Length"));
  });

  await t.step("hop-by-hop headers of the handler are replaced", async () => {
    const res = new Response("abc", {
      headers: {
        Connection: "keep-alive",
        "Keep-Alive": "timeout=5",
        "Transfer-Encoding": "chunked",
        "Content-Length": "999",
      },
    });
    const s = text(await serializeResponse(res, { date: null }));
    assert.ok(!/keep-alive|chunked|999/i.test(s));
    assert.ok(s.endsWith("Connection: close\r\nContent-Length: 3\r\n\r\nabc"));
  });

  await t.step("Set-Cookie lines stay separate", async () => {
    const headers = new Headers();
    headers.append("Set-Cookie", "a=1");
    headers.append("Set-Cookie", "b=2");
    const s = text(await serializeResponse(new Response(null, { headers }), { date: null }));
    assert.ok(s.includes("set-cookie: a=1\r\nset-cookie: b=2\r\n"));
  });

  await t.step("status text: custom, default, none", async () => {
    let s = text(
      await serializeResponse(new Response(null, { status: 418, statusText: "Teapot" })),
    );
    assert.ok(s.startsWith("HTTP/1.1 418 Teapot\r\n"));
    s = text(await serializeResponse(new Response(null, { status: 404 })));
    assert.ok(s.startsWith("HTTP/1.1 404 Not Found\r\n"));
    s = text(await serializeResponse(new Response(null, { status: 599 })));
    assert.ok(s.startsWith("HTTP/1.1 599 \r\n"));
  });

  await t.step("Date: added when missing, the handler's kept", async () => {
    const date = new Date(Date.UTC(2020, 0, 2, 3, 4, 5));
    let s = text(await serializeResponse(new Response(null), { date }));
    assert.ok(s.includes("\r\nDate: Thu, 02 Jan 2020 03:04:05 GMT\r\n"));
    s = text(await serializeResponse(new Response(null, { headers: { Date: "x" } }), { date }));
    assert.ok(s.includes("\r\ndate: x\r\n"));
    assert.ok(!s.includes("2020"));
    assert.match(text(await serializeResponse(new Response(null))), /\r\nDate: .+ GMT\r\n/);
  });

  await t.step("latin1 header values are sent byte for byte", async () => {
    const res = new Response(null, { headers: { "X-L": "caf\u00e9" } });
    const bytes = await serializeResponse(res, { date: null });
    assert.ok(text(bytes).includes("x-l: caf\xe9\r\n"));
  });

  await t.step("parses back in every chunking", async () => {
    const res = new Response("payload", { status: 201, headers: { "X-A": "1" } });
    const bytes = await serializeResponse(res, { date: null });
    const { value, end } = parseResponse(bytes);
    assert.equal(value.status, 201);
    assert.equal(value.reason, "Created");
    assert.equal(value.get("x-a"), "1");
    assert.equal(text(bytes.subarray(end)), "payload");
  });

  await t.step("1xx responses are refused", async () => {
    await assert.rejects(
      () => serializeResponse(new Response(null, { status: 101 })),
      (e) => e instanceof HandshakeError && e.code === "INVALID_STATUS",
    );
  });

  await t.step("a failing body rejects", async () => {
    const stream = new ReadableStream({
      pull(c) {
        c.error(new Error("boom"));
      },
    });
    await assert.rejects(() => serializeResponse(new Response(stream)), /boom/);
  });
});

// ---------------------------------------------------------------------------------------
// Client side

Deno.test("generateKey", () => {
  const seen = new Set<string>();
  for (let i = 0; i < 100; i++) {
    const key = generateKey();
    assert.equal(key.length, 24);
    assert.equal(atob(key).length, 16);
    assert.ok(isValidKey(key), key);
    seen.add(key);
  }
  assert.equal(seen.size, 100);
});

Deno.test("buildClientRequest", async (t) => {
  await t.step("exact bytes", () => {
    const bytes = buildClientRequest(new URL("ws://server.example.com/chat"), SAMPLE_KEY, {
      protocols: ["chat", "superchat"],
      headers: { Origin: "http://example.com" },
    });
    assert.equal(
      text(bytes),
      "GET /chat HTTP/1.1\r\n" +
        "Host: server.example.com\r\n" +
        "Upgrade: websocket\r\n" +
        "Connection: Upgrade\r\n" +
        `Sec-WebSocket-Key: ${SAMPLE_KEY}\r\n` +
        "Sec-WebSocket-Version: 13\r\n" +
        "Sec-WebSocket-Protocol: chat, superchat\r\n" +
        "Origin: http://example.com\r\n\r\n",
    );
  });

  const hosts: Array<[string, string, string]> = [
    ["ws://example.com", "example.com", "/"],
    ["ws://example.com:80/", "example.com", "/"],
    ["ws://example.com:8080/x", "example.com:8080", "/x"],
    ["ws://EXAMPLE.com/", "example.com", "/"],
    ["ws://127.0.0.1:9000/", "127.0.0.1:9000", "/"],
    ["ws://[::1]/", "[::1]", "/"],
    ["ws://[::1]:80/", "[::1]", "/"],
    ["ws://[::1]:8080/a", "[::1]:8080", "/a"],
    ["ws://[2001:db8::1]:443/", "[2001:db8::1]:443", "/"],
    ["wss://example.com:443/", "example.com", "/"],
    ["wss://example.com:80/", "example.com:80", "/"],
    ["ws://user:pass@example.com/", "example.com", "/"],
    ["ws://h/a/b?x=1&y", "h", "/a/b?x=1&y"],
    ["ws://h/?", "h", "/?"],
    ["ws://h/a b?q=é", "h", "/a%20b?q=%C3%A9"],
  ];
  for (const [url, host, target] of hosts) {
    await t.step(`${url} → Host ${host}, target ${target}`, () => {
      const s = text(buildClientRequest(new URL(url), SAMPLE_KEY));
      assert.ok(s.startsWith(`GET ${target} HTTP/1.1\r\nHost: ${host}\r\n`), s);
      assert.ok(!s.includes("Sec-WebSocket-Protocol"));
      assert.ok(!s.includes("pass"));
    });
  }

  await t.step("URL errors", () => {
    for (const url of ["http://h/", "https://h/", "ftp://h/", "ws://h/#frag", "ws://h/#"]) {
      throwsCode(() => buildClientRequest(new URL(url), SAMPLE_KEY), "INVALID_URL");
    }
  });

  await t.step("key errors", () => {
    for (const key of ["", b64(15), "dGhlIHNhbXBsZSBub25jZR==", `${SAMPLE_KEY}\r\nX: 1`]) {
      throwsCode(() => buildClientRequest(new URL("ws://h/"), key), "INVALID_KEY");
    }
  });

  await t.step("protocol errors", () => {
    for (const protocols of [[""], ["a b"], ["a,b"], ["chat", "chat"], ["x\r\nY: 1"], ["é"]]) {
      throwsCode(
        () => buildClientRequest(new URL("ws://h/"), SAMPLE_KEY, { protocols }),
        "INVALID_PROTOCOL",
      );
    }
  });

  await t.step("header errors", () => {
    const url = new URL("ws://h/");
    for (
      const name of [
        "Host",
        "upgrade",
        "Connection",
        "Sec-WebSocket-Key",
        "Sec-WebSocket-Version",
        "Sec-WebSocket-Protocol",
        "Sec-WebSocket-Extensions",
        "Content-Length",
        "Transfer-Encoding",
      ]
    ) {
      throwsCode(
        () => buildClientRequest(url, SAMPLE_KEY, { headers: [[name, "x"]] }),
        "RESERVED_HEADER",
      );
    }
    throwsCode(
      () => buildClientRequest(url, SAMPLE_KEY, { headers: { Cookie: "a\r\nb" } }),
      "HEADER_INJECTION",
    );
    throwsCode(
      () => buildClientRequest(url, SAMPLE_KEY, { headers: { "Bad Name": "1" } }),
      "INVALID_HEADER",
    );
  });
});

const GOOD_RESPONSE = "HTTP/1.1 101 Switching Protocols\r\n" +
  "Upgrade: websocket\r\n" +
  "Connection: Upgrade\r\n" +
  `Sec-WebSocket-Accept: ${SAMPLE_ACCEPT}\r\n`;

function clientCheck(extra: string, offered: string[] = [], head = GOOD_RESPONSE) {
  const res = parseResponse(latin1(head + extra + "\r\n")).value;
  return validateUpgradeResponse(res, SAMPLE_KEY, offered);
}

Deno.test("validateUpgradeResponse", async (t) => {
  await t.step("minimal valid response", () => {
    assert.deepEqual(clientCheck(""), { ok: true, protocol: null });
  });

  await t.step("offered protocols but none chosen is fine", () => {
    assert.deepEqual(clientCheck("", ["chat"]), { ok: true, protocol: null });
  });

  await t.step("chosen protocol among the offered", () => {
    assert.deepEqual(clientCheck("Sec-WebSocket-Protocol: chat\r\n", ["superchat", "chat"]), {
      ok: true,
      protocol: "chat",
    });
  });

  await t.step("case-insensitive Upgrade and Connection, names in any case", () => {
    const head = "HTTP/1.1 101 Switching Protocols\r\nUPGRADE: WebSocket\r\n" +
      `connection: keep-alive, UPGRADE\r\nsec-websocket-accept: ${SAMPLE_ACCEPT}\r\n`;
    assert.deepEqual(clientCheck("", [], head), { ok: true, protocol: null });
  });

  /** GOOD_RESPONSE with `from` replaced by `to`. */
  const swap = (from: string, to: string) => GOOD_RESPONSE.replace(from, to);
  // [name, extra header lines, offered protocols, message, head (default GOOD_RESPONSE)]
  const failures: Array<[string, string, string[], RegExp, string?]> = [
    ["status 200", "", [], /200 OK/, swap("101 Switching Protocols", "200 OK")],
    ["status 400", "", [], /400/, swap("101 Switching Protocols", "400 Bad Request")],
    ["Upgrade missing", "", [], /Upgrade/, swap("Upgrade: websocket\r\n", "")],
    ["Upgrade: h2c", "", [], /Upgrade/, swap("Upgrade: websocket", "Upgrade: h2c")],
    ["Upgrade list", "", [], /Upgrade/, swap("Upgrade: websocket", "Upgrade: websocket, h2c")],
    ["Upgrade twice", "Upgrade: websocket\r\n", [], /Upgrade/],
    ["Connection missing", "", [], /Connection/, swap("Connection: Upgrade\r\n", "")],
    ["Connection: close", "", [], /Connection/, swap("Connection: Upgrade", "Connection: close")],
    ["accept mismatch", "", [], /does not match/, swap(SAMPLE_ACCEPT, acceptKey(b64(16)))],
    ["accept of the key itself", "", [], /does not match/, swap(SAMPLE_ACCEPT, SAMPLE_KEY)],
    ["accept missing", "", [], /missing/, swap(`Sec-WebSocket-Accept: ${SAMPLE_ACCEPT}\r\n`, "")],
    ["accept repeated", `Sec-WebSocket-Accept: ${SAMPLE_ACCEPT}\r\n`, [], /repeated/],
    ["extension accepted", "Sec-WebSocket-Extensions: permessage-deflate\r\n", [], /extension/],
    ["empty extension header", "Sec-WebSocket-Extensions:\r\n", [], /extension/],
    ["unoffered protocol", "Sec-WebSocket-Protocol: mqtt\r\n", ["chat"], /not offered/],
    ["protocol when none offered", "Sec-WebSocket-Protocol: chat\r\n", [], /none was offered/],
    ["protocol case differs", "Sec-WebSocket-Protocol: Chat\r\n", ["chat"], /not offered/],
    ["empty protocol", "Sec-WebSocket-Protocol:\r\n", ["chat"], /not offered/],
    [
      "protocol list",
      "Sec-WebSocket-Protocol: chat, superchat\r\n",
      ["chat", "superchat"],
      /not offered/,
    ],
    [
      "protocol repeated",
      "Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: chat\r\n",
      ["chat"],
      /repeated/,
    ],
  ];
  for (const [name, extra, offered, message, head] of failures) {
    await t.step(name, () => {
      const r = clientCheck(extra, offered, head);
      assert.equal(r.ok, false);
      if (!r.ok) assert.match(r.message, message);
    });
  }
});

Deno.test("client ↔ server round trip", async (t) => {
  const scenarios: Array<[string, string, string[], (offered: string[]) => string | null]> = [
    ["no protocols", "ws://localhost:8080/echo", [], () => null],
    ["first protocol", "ws://127.0.0.1:9001/chat?room=1", ["chat", "superchat"], (o) => o[0]],
    ["last protocol", "ws://[::1]:9002/", ["a", "b", "c"], (o) => o[o.length - 1]],
    ["protocols offered, none chosen", "ws://h/", ["x"], () => null],
  ];
  for (const [name, url, protocols, choose] of scenarios) {
    await t.step(name, () => {
      const key = generateKey();
      const request = buildClientRequest(new URL(url), key, {
        protocols,
        headers: { Origin: "http://example.com" },
      });
      const frames = Uint8Array.of(0x81, 0x85, 1, 2, 3, 4, 0x69, 0x67, 0x6f, 0x68, 0x6e);
      const clientBytes = new Uint8Array(request.length + frames.length);
      clientBytes.set(request);
      clientBytes.set(frames, request.length);

      const parsed = parseRequest(clientBytes);
      assert.equal(parsed.end, request.length);
      assert.deepEqual([...clientBytes.subarray(parsed.end)], [...frames]);
      assert.equal(parsed.value.target, new URL(url).pathname + new URL(url).search);
      const accepted = validateUpgrade(parsed.value);
      assert.ok(accepted.ok);
      if (!accepted.ok) return;
      assert.equal(accepted.key, key);
      assert.deepEqual(accepted.protocols, protocols);

      const protocol = selectProtocol(accepted.protocols, choose(accepted.protocols));
      const response = buildUpgradeResponse({
        key: accepted.key,
        protocol,
        offered: accepted.protocols,
        headers: [["Set-Cookie", "sid=1"]],
      });
      const serverBytes = new Uint8Array(response.length + 2);
      serverBytes.set(response);
      serverBytes.set([0x81, 0x00], response.length);
      const res = parseResponse(serverBytes);
      assert.equal(res.end, response.length);
      assert.equal(res.value.status, 101);
      assert.equal(res.value.get("set-cookie"), "sid=1");
      assert.deepEqual(validateUpgradeResponse(res.value, key, protocols), { ok: true, protocol });
      // The accept of another key must not validate.
      assert.equal(validateUpgradeResponse(res.value, generateKey(), protocols).ok, false);
    });
  }
});
