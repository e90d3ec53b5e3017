import assert from "node:assert/strict";
import { HandshakeError } from "../../../protocol/http/handshake_error.ts";
import {
  announcesBody,
  bodyFraming,
  HttpRequestParser,
  type HttpRequestParserOptions,
  isUpgradeRequest,
  ParsedRequest,
  requestRemote,
  toRequest,
} from "../../../protocol/http/request.ts";
import {
  decodeLatin1,
  encodeLatin1,
  HeaderList,
  isToken,
  isValidHost,
  listHasToken,
  splitList,
  trimOws,
  validateHeaders,
} from "../../../protocol/http/head.ts";
import {
  assertErrorSticksUntilReset,
  chunkings,
  feedEveryChunking,
  pushWhole,
} from "../../fixtures/chunking.ts";
import { type RequestOutcome, requestOutcome } from "../../fixtures/http_outcomes.ts";
import { latin1 } from "../../fixtures/bytes.ts";

// ---------------------------------------------------------------------------------------
// Feeding harness (tests/fixtures/chunking.ts): every input is parsed whole, one byte at a
// time and in several seeded random chunkings, each chunk between guard bytes; all runs must
// agree.

let seedCounter = 1;

/** Parses `input` in every chunking; asserts they agree and returns the outcome. */
function parseAll(
  input: string | Uint8Array,
  options?: HttpRequestParserOptions,
): { outcome: RequestOutcome; request: ParsedRequest | null } {
  const bytes = typeof input === "string" ? latin1(input) : input;
  const { fed, view } = feedEveryChunking(
    bytes,
    seedCounter++,
    () => new HttpRequestParser(options),
    requestOutcome,
  );
  return { outcome: view, request: fed.result?.kind === "complete" ? fed.result.request : null };
}

function expectError(input: string | Uint8Array, status: number, message?: RegExp): void {
  const { outcome } = parseAll(input);
  assert.equal(outcome.kind, "error", `expected an error, got ${JSON.stringify(outcome)}`);
  if (outcome.kind !== "error") return;
  assert.equal(outcome.status, status, outcome.message);
  if (message) assert.match(outcome.message, message);
}

function expectComplete(input: string | Uint8Array): ParsedRequest {
  const { outcome, request } = parseAll(input);
  assert.equal(outcome.kind, "complete", JSON.stringify(outcome));
  return request!;
}

const SIMPLE = "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n";

// ---------------------------------------------------------------------------------------

Deno.test("harness: chunkings cover the input exactly", () => {
  for (const c of chunkings(97, 42)) {
    assert.equal(c.sizes.reduce((a, b) => a + b, 0), 97);
    assert.ok(c.sizes.every((n) => n > 0));
  }
});

Deno.test("HttpRequestParser: valid heads", async (t) => {
  await t.step("minimal request", () => {
    const req = expectComplete(SIMPLE);
    assert.equal(req.method, "GET");
    assert.equal(req.target, "/");
    assert.equal(req.version, "1.1");
    assert.deepEqual(req.headers, [["host", "example.com"]]);
  });

  await t.step("RFC 6455 sample handshake", () => {
    const raw = "GET /chat HTTP/1.1\r\n" +
      "Host: server.example.com\r\n" +
      "Upgrade: websocket\r\n" +
      "Connection: Upgrade\r\n" +
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
      "Origin: http://example.com\r\n" +
      "Sec-WebSocket-Protocol: chat, superchat\r\n" +
      "Sec-WebSocket-Version: 13\r\n\r\n";
    const { outcome } = parseAll(raw);
    assert.deepEqual(outcome, {
      kind: "complete",
      end: raw.length,
      method: "GET",
      target: "/chat",
      version: "1.1",
      headers: [
        ["host", "server.example.com"],
        ["upgrade", "websocket"],
        ["connection", "Upgrade"],
        ["sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="],
        ["origin", "http://example.com"],
        ["sec-websocket-protocol", "chat, superchat"],
        ["sec-websocket-version", "13"],
      ],
    });
  });

  await t.step("bytes after the head are reported through consumed", () => {
    const frame = "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58";
    const { outcome } = parseAll(SIMPLE + frame);
    assert.equal(outcome.kind, "complete");
    if (outcome.kind === "complete") assert.equal(outcome.end, SIMPLE.length);
    // Within a single chunk starting at an offset, consumed counts from start.
    const buf = latin1("junk" + SIMPLE + frame + "tail");
    const result = new HttpRequestParser().push(buf, 4, 4 + SIMPLE.length + frame.length);
    assert.equal(result.kind, "complete");
    if (result.kind === "complete") assert.equal(result.consumed, SIMPLE.length);
  });

  await t.step("header names are lowercased, values keep their case", () => {
    const req = expectComplete("GET / HTTP/1.1\r\nHOST: Example.COM\r\nX-MiXeD: VaLuE\r\n\r\n");
    assert.deepEqual(req.headers, [["host", "Example.COM"], ["x-mixed", "VaLuE"]]);
    assert.equal(req.get("x-MIXED"), "VaLuE");
  });

  await t.step("well-known and near-miss names (same length) are both lowercased", () => {
    const req = expectComplete(
      "GET / HTTP/1.1\r\nHOST: h\r\nHOSX: 1\r\nSec-WebSocket-KEY: k\r\nSec-WebSocket-Kez: z\r\n\r\n",
    );
    assert.deepEqual(req.headers.map(([n]) => n), [
      "host",
      "hosx",
      "sec-websocket-key",
      "sec-websocket-kez",
    ]);
  });

  await t.step("values are trimmed of spaces and tabs, inner whitespace kept", () => {
    const req = expectComplete("GET / HTTP/1.1\r\nHost:h\r\nX-A: \t a \t b \t \r\nX-B:\r\n\r\n");
    assert.equal(req.get("x-a"), "a \t b");
    assert.equal(req.get("x-b"), "");
  });

  await t.step("obs-text in values is decoded as latin1, byte for byte", () => {
    const req = expectComplete("GET / HTTP/1.1\r\nHost: h\r\nX-A: caf\xe9 \x80\x9f\xff\r\n\r\n");
    assert.equal(req.get("x-a"), "caf\u00e9 \u0080\u009f\u00ff");
  });

  await t.step("long ASCII values go through the decoder path", () => {
    const long = "v".repeat(100) + "!~";
    assert.equal(expectComplete(`GET / HTTP/1.1\r\nHost: h\r\nX: ${long}\r\n\r\n`).get("x"), long);
  });

  await t.step("repeated fields: get joins with comma, getAll lists, has", () => {
    const req = expectComplete("GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nx-a: 2, 3\r\n\r\n");
    assert.equal(req.get("X-A"), "1, 2, 3");
    assert.deepEqual(req.getAll("x-a"), ["1", "2, 3"]);
    assert.equal(req.has("X-a"), true);
    assert.equal(req.has("x-b"), false);
    assert.equal(req.get("x-b"), null);
    assert.deepEqual(req.getAll("x-b"), []);
  });

  await t.step("HTTP/1.0 without Host is accepted", () => {
    const req = expectComplete("GET / HTTP/1.0\r\n\r\n");
    assert.equal(req.version, "1.0");
    assert.equal(req.has("host"), false);
  });

  await t.step("HTTP/1.0 with one Host is accepted", () => {
    assert.equal(expectComplete("GET / HTTP/1.0\r\nHost: h\r\n\r\n").get("host"), "h");
  });

  await t.step("later HTTP/1.x minors are handled as 1.1 (RFC 9110 §2.5)", () => {
    assert.equal(expectComplete("GET / HTTP/1.9\r\nHost: h\r\n\r\n").version, "1.1");
  });

  await t.step("one and two leading empty lines are skipped", () => {
    assert.equal(expectComplete("\r\n" + SIMPLE).target, "/");
    const { outcome } = parseAll("\r\n\r\n" + SIMPLE + "x");
    assert.equal(outcome.kind === "complete" && outcome.end, 4 + SIMPLE.length);
  });

  await t.step("methods: any token, case preserved", () => {
    assert.equal(expectComplete("get / HTTP/1.1\r\nHost: h\r\n\r\n").method, "get");
    assert.equal(expectComplete("M-SEARCH / HTTP/1.1\r\nHost: h\r\n\r\n").method, "M-SEARCH");
  });

  await t.step("target forms", () => {
    assert.equal(
      expectComplete("GET /a/b?c=d&e=%20 HTTP/1.1\r\nHost: h\r\n\r\n").target,
      "/a/b?c=d&e=%20",
    );
    assert.equal(
      expectComplete("GET http://example.com/x?y HTTP/1.1\r\nHost: example.com\r\n\r\n").target,
      "http://example.com/x?y",
    );
    assert.equal(expectComplete("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n").target, "*");
    assert.equal(
      expectComplete("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n").target,
      "example.com:443",
    );
  });

  await t.step("Host values", () => {
    for (
      const host of ["example.com", "example.com:8080", "[::1]", "[::1]:9000", "127.0.0.1", "h:"]
    ) {
      assert.equal(expectComplete(`GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`).get("host"), host);
    }
    // RFC 9112 §3.2: empty Host for targets without authority.
    assert.equal(expectComplete("GET / HTTP/1.1\r\nHost:\r\n\r\n").get("host"), "");
  });

  await t.step("token characters in names", () => {
    const name = "!#$%&'*+-.^_`|~09azAZ";
    const req = expectComplete(`GET / HTTP/1.1\r\nHost: h\r\n${name}: v\r\n\r\n`);
    assert.equal(req.get(name), "v");
  });
});

Deno.test("HttpRequestParser: request line errors", async (t) => {
  const cases: Array<[string, string, number, RegExp?]> = [
    ["double space after method", "GET  / HTTP/1.1", 400, /request-target/],
    ["double space before version", "GET /  HTTP/1.1", 400, /HTTP-version/],
    ["leading space", " GET / HTTP/1.1", 400],
    ["trailing space", "GET / HTTP/1.1 ", 400],
    ["tab as separator", "GET\t/ HTTP/1.1", 400],
    ["tab before version", "GET /\tHTTP/1.1", 400],
    ["method not a token", "G@T / HTTP/1.1", 400],
    ["missing target", "GET HTTP/1.1", 400],
    ["HTTP/0.9 simple request", "GET /", 400],
    ["missing version", "GET / ", 400],
    ["lowercase http", "GET / http/1.1", 400],
    ["version without minor", "GET / HTTP/1", 400],
    ["two-digit minor", "GET / HTTP/1.10", 400],
    ["two-digit major", "GET / HTTP/11.1", 400],
    ["version garbage", "GET / HTTP/1.1x", 400],
    ["version letters", "GET / HTTP/a.b", 400],
    ["HTTP/2.0", "GET / HTTP/2.0", 505, /HTTP\/2\.0/],
    ["HTTP/3.0", "GET / HTTP/3.0", 505],
    ["HTTP/0.9 with version", "GET / HTTP/0.9", 505],
    ["HTTP/2 preface", "PRI * HTTP/2.0", 505],
    ["fragment in target", "GET /a#b HTTP/1.1", 400, /fragment/],
    ["obs-text in target", "GET /caf\xe9 HTTP/1.1", 400],
    ["DEL in target", "GET /a\x7f HTTP/1.1", 400, /0x7f/],
    ["NUL in target", "GET /a\x00 HTTP/1.1", 400, /0x00/],
    ["asterisk for GET", "GET * HTTP/1.1", 400, /OPTIONS/],
    ["relative target", "GET a/b HTTP/1.1", 400],
    ["CONNECT with origin-form", "CONNECT / HTTP/1.1", 400, /authority/],
    ["CONNECT without port", "CONNECT example.com HTTP/1.1", 400],
    ["bad scheme", "GET 1http://x/ HTTP/1.1", 400],
  ];
  for (const [name, line, status, message] of cases) {
    await t.step(name, () => expectError(`${line}\r\nHost: h\r\n\r\n`, status, message));
  }

  await t.step("a third leading empty line is refused", () => {
    expectError("\r\n\r\n\r\n" + SIMPLE, 400, /empty line/);
  });

  await t.step("a bare-LF leading empty line is refused", () => {
    expectError("\n" + SIMPLE, 400, /bare LF/);
  });

  await t.step("binary garbage (TLS ClientHello) is refused at the first byte", () => {
    const hello = Uint8Array.of(0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03);
    const result = new HttpRequestParser().push(hello, 0, 1);
    assert.deepEqual(result, {
      kind: "error",
      status: 400,
      message: "control character 0x16 in message head",
    });
    expectError(hello, 400);
  });
});

Deno.test("HttpRequestParser: header errors", async (t) => {
  const cases: Array<[string, string, RegExp?]> = [
    ["obs-fold with space", "Host: h\r\nX-A: 1\r\n 2\r\n", /obs-fold/],
    ["obs-fold with tab", "Host: h\r\nX-A: 1\r\n\t2\r\n", /obs-fold/],
    ["whitespace before first field", " Host: h\r\n", /first header/],
    ["space before colon", "Host : h\r\n", /between header field name and colon/],
    ["tab before colon", "Host\t: h\r\n", /between header field name and colon/],
    ["space inside name", "Ho st: h\r\n", /name/],
    ["no colon", "Host h\r\n", /colon|name/],
    ["only a name", "Host\r\n", /without a colon/],
    ["empty name", "Host: h\r\n: v\r\n", /empty header field name/],
    ["non-token name", "Host: h\r\nX(A): v\r\n", /invalid character/],
    ["UTF-8 in name", "Host: h\r\nX-\xc3\xa9: v\r\n", /invalid character/],
    ["NUL in value", "Host: h\r\nX-A: a\x00b\r\n", /0x00/],
    ["NUL at end of value", "Host: h\r\nX-A: a\x00\r\n", /0x00/],
    ["bare CR in value", "Host: h\r\nX-A: a\rb\r\n", /bare CR/],
    ["CR CR LF", "Host: h\r\nX-A: a\r\r\n", /bare CR/],
    ["bare LF in value", "Host: h\r\nX-A: a\nb\r\n", /bare LF/],
    ["bare LF line ending", "Host: h\nX-A: b\r\n", /bare LF/],
    ["bare LF final line", "Host: h\r\n\n", /bare LF/],
    ["other control character", "Host: h\r\nX-A: a\x01b\r\n", /0x01/],
    ["escape in value", "Host: h\r\nX-A: \x1b[31m\r\n", /0x1b/],
    ["DEL in value", "Host: h\r\nX-A: a\x7f\r\n", /0x7f/],
    ["missing Host", "X-A: b\r\n", /missing Host/],
    ["duplicate Host", "Host: a\r\nHost: a\r\n", /more than one Host/],
    ["duplicate Host different case", "Host: a\r\nhOsT: b\r\n", /more than one Host/],
    ["Host with space", "Host: a b\r\n", /invalid Host/],
    ["Host with path", "Host: a/b\r\n", /invalid Host/],
    ["Host with userinfo", "Host: u@a\r\n", /invalid Host/],
    ["Host with bad port", "Host: a:8x\r\n", /invalid Host/],
    ["Host only port", "Host: :80\r\n", /invalid Host/],
    ["Host unclosed bracket", "Host: [::1\r\n", /invalid Host/],
    ["Host bad percent", "Host: a%zz\r\n", /invalid Host/],
    // Found by the http-host fuzz property: brackets hold an IPv6 or IPvFuture literal only.
    ["Host bracketed non-address", "Host: [zz]\r\n", /invalid Host/],
    ["Host bracketed three colons", "Host: [:::]\r\n", /invalid Host/],
    ["Host bracketed IPv4", "Host: [1.2.3.4]:80\r\n", /invalid Host/],
    ["Host bracketed nine groups", "Host: [1:2:3:4:5:6:7:8:9]\r\n", /invalid Host/],
    ["Host bracketed two ::", "Host: [1::2::3]\r\n", /invalid Host/],
    ["Host bracketed octet 256", "Host: [::1.2.3.256]\r\n", /invalid Host/],
    ["Host bracketed empty IPvFuture", "Host: [v1.]\r\n", /invalid Host/],
  ];
  for (const [name, fields, message] of cases) {
    await t.step(name, () => expectError(`GET / HTTP/1.1\r\n${fields}\r\n`, 400, message));
  }

  await t.step("duplicate Host in HTTP/1.0", () => {
    expectError("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400, /more than one Host/);
  });

  await t.step("bare CR right before the final LF", () => {
    expectError("GET / HTTP/1.1\r\nHost: h\r\n\r\r\n", 400, /bare CR/);
  });
});

Deno.test("HttpRequestParser: size limit", async (t) => {
  const head = (pad: number) => `GET / HTTP/1.1\r\nHost: h\r\nX-Pad: ${"a".repeat(pad)}\r\n\r\n`;
  const base = head(0).length;

  await t.step("a head of exactly 8192 bytes is accepted", () => {
    const raw = head(8192 - base);
    assert.equal(raw.length, 8192);
    const { outcome } = parseAll(raw + "frame");
    assert.equal(outcome.kind === "complete" && outcome.end, 8192);
  });

  await t.step("a head of 8193 bytes is a 431", () => {
    const raw = head(8193 - base);
    assert.equal(raw.length, 8193);
    expectError(raw, 431, /8192/);
  });

  await t.step("leading empty lines count toward the limit", () => {
    expectError("\r\n" + head(8192 - base), 431);
  });

  await t.step("an endless request line is cut off after exactly 8192 bytes", () => {
    const parser = new HttpRequestParser();
    const byte = new Uint8Array(1);
    const line = latin1("GET /");
    for (let i = 0; i < 8192; i++) {
      byte[0] = i < line.length ? line[i] : 0x61;
      const result = parser.push(byte, 0, 1);
      if (i < 8191) assert.equal(result.kind, "incomplete", `byte ${i + 1}`);
      else {
        assert.equal(result.kind, "error");
        assert.equal(result.kind === "error" && result.status, 431);
      }
    }
  });

  await t.step("a huge single read is refused without scanning past the limit", () => {
    const big = new Uint8Array(1 << 20).fill(0x61);
    big.set(latin1("GET /"));
    // A NUL past the limit would be a 400 if the parser looked at it.
    big[8192] = 0;
    const result = new HttpRequestParser().push(big, 0, big.length);
    assert.equal(result.kind === "error" && result.status, 431);
  });

  await t.step("an endless header line is a 431", () => {
    const raw = "GET / HTTP/1.1\r\nHost: h\r\nX: " + "b".repeat(9000);
    expectError(raw, 431);
  });

  await t.step("endless header lines are a 431", () => {
    expectError("GET / HTTP/1.1\r\nHost: h\r\n" + "X: y\r\n".repeat(2000), 431);
  });

  await t.step("custom maxHeaderBytes: at and one over", () => {
    const raw = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
    let outcome = parseAll(raw, { maxHeaderBytes: raw.length }).outcome;
    assert.equal(outcome.kind, "complete");
    outcome = parseAll(raw, { maxHeaderBytes: raw.length - 1 }).outcome;
    assert.equal(outcome.kind === "error" && outcome.status, 431);
  });

  await t.step("the limit applies per head: pipelined heads each get the full budget", () => {
    const one = head(8192 - base);
    const both = latin1(one + one);
    const parser = new HttpRequestParser();
    const first = parser.push(both, 0, both.length);
    assert.equal(first.kind === "complete" && first.consumed, 8192);
    const second = parser.push(both, 8192, both.length);
    assert.equal(second.kind === "complete" && second.consumed, 8192);
  });

  await t.step("invalid maxHeaderBytes throws a typed error", () => {
    for (const bad of [0, -1, 1.5, Number.NaN, 15]) {
      assert.throws(
        () => new HttpRequestParser({ maxHeaderBytes: bad }),
        (e) => e instanceof HandshakeError && e.code === "INVALID_OPTION",
      );
    }
  });
});

Deno.test("HttpRequestParser: lifecycle", async (t) => {
  await t.step("pipelined requests and trailing bytes", () => {
    const two = latin1(SIMPLE + "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc");
    const parser = new HttpRequestParser();
    const a = parser.push(two, 0, two.length);
    assert.equal(a.kind, "complete");
    if (a.kind !== "complete") return;
    assert.equal(a.consumed, SIMPLE.length);
    const b = parser.push(two, a.consumed, two.length);
    assert.equal(b.kind, "complete");
    if (b.kind !== "complete") return;
    assert.equal(b.request.method, "POST");
    assert.equal(two.length - a.consumed - b.consumed, 3);
  });

  await t.step("the second request may be split across reads", () => {
    const parser = new HttpRequestParser();
    const first = latin1(SIMPLE + "GET /se");
    const a = parser.push(first, 0, first.length);
    assert.equal(a.kind === "complete" && a.consumed, SIMPLE.length);
    assert.equal(parser.push(first, SIMPLE.length, first.length).kind, "incomplete");
    const rest = latin1("cond HTTP/1.1\r\nHost: h\r\n\r\n");
    const b = parser.push(rest, 0, rest.length);
    assert.equal(b.kind === "complete" && b.request.target, "/second");
  });

  await t.step("errors are sticky until reset", () => {
    assertErrorSticksUntilReset(
      new HttpRequestParser(),
      "GET / HTTP/1.1\r\nHost : h\r\n\r\n",
      SIMPLE,
    );
  });

  await t.step("reset mid-head starts over", () => {
    const parser = new HttpRequestParser();
    assert.equal(pushWhole(parser, "GET /abandoned HT").kind, "incomplete");
    parser.reset();
    const r = pushWhole(parser, SIMPLE);
    assert.equal(r.kind === "complete" && r.request.target, "/");
  });

  await t.step("empty pushes are harmless", () => {
    const parser = new HttpRequestParser();
    const good = latin1(SIMPLE);
    assert.equal(parser.push(good, 0, 0).kind, "incomplete");
    assert.equal(parser.push(good, 5, 5).kind, "incomplete");
    assert.equal(pushWhole(parser, good).kind, "complete");
  });

  await t.step("a read may end between CR and LF", () => {
    const parser = new HttpRequestParser();
    assert.equal(pushWhole(parser, "GET / HTTP/1.1\r").kind, "incomplete");
    assert.equal(pushWhole(parser, "\nHost: h\r").kind, "incomplete");
    assert.equal(pushWhole(parser, "\n\r").kind, "incomplete");
    const r = pushWhole(parser, "\nX");
    assert.equal(r.kind === "complete" && r.consumed, 1);
  });
});

function req(headers: Array<[string, string]>, version: "1.0" | "1.1" = "1.1"): ParsedRequest {
  return new ParsedRequest({
    method: "POST",
    target: "/",
    version,
    headers: [["host", "h"], ...headers],
  });
}

Deno.test("bodyFraming / announcesBody", async (t) => {
  const cases: Array<[string, Array<[string, string]>, unknown, ("1.0" | "1.1")?]> = [
    ["no framing headers", [], { kind: "none" }],
    ["Content-Length: 0", [["content-length", "0"]], { kind: "none" }],
    ["Content-Length: 5", [["content-length", "5"]], { kind: "length", length: 5 }],
    ["leading zeros", [["content-length", "007"]], { kind: "length", length: 7 }],
    ["identical list", [["content-length", "5, 5"]], { kind: "length", length: 5 }],
    ["identical lines", [["content-length", "5"], ["content-length", "5"]], {
      kind: "length",
      length: 5,
    }],
    ["Content-Length: abc", [["content-length", "abc"]], "invalid"],
    ["negative", [["content-length", "-1"]], "invalid"],
    ["plus sign", [["content-length", "+5"]], "invalid"],
    ["empty", [["content-length", ""]], "invalid"],
    ["trailing comma", [["content-length", "5,"]], "invalid"],
    ["hex", [["content-length", "0x5"]], "invalid"],
    ["too large", [["content-length", "99999999999999999999"]], "invalid"],
    ["conflicting list", [["content-length", "5, 6"]], "invalid"],
    ["conflicting lines", [["content-length", "5"], ["content-length", "6"]], "invalid"],
    ["chunked", [["transfer-encoding", "chunked"]], { kind: "chunked" }],
    ["Chunked case", [["transfer-encoding", "Chunked"]], { kind: "chunked" }],
    ["gzip, chunked", [["transfer-encoding", "gzip, chunked"]], { kind: "chunked" }],
    ["gzip then chunked lines", [["transfer-encoding", "gzip"], [
      "transfer-encoding",
      "chunked",
    ]], { kind: "chunked" }],
    ["chunked, gzip", [["transfer-encoding", "chunked, gzip"]], "invalid"],
    ["gzip only", [["transfer-encoding", "gzip"]], "invalid"],
    ["chunked twice", [["transfer-encoding", "chunked, chunked"]], "invalid"],
    ["empty TE", [["transfer-encoding", ""]], "invalid"],
    ["TE and CL", [["transfer-encoding", "chunked"], ["content-length", "5"]], "invalid"],
    ["TE and CL 0", [["content-length", "0"], ["transfer-encoding", "chunked"]], "invalid"],
    ["TE in HTTP/1.0", [["transfer-encoding", "chunked"]], "invalid", "1.0"],
  ];
  for (const [name, headers, expected, version] of cases) {
    await t.step(name, () => {
      const r = req(headers, version);
      const framing = bodyFraming(r);
      if (expected === "invalid") {
        assert.equal(framing.kind, "invalid");
        assert.equal(announcesBody(r), true);
      } else {
        assert.deepEqual(framing, expected);
        assert.equal(announcesBody(r), framing.kind !== "none");
      }
    });
  }

  await t.step("works on parsed requests", () => {
    const parsed = expectComplete("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 12\r\n\r\n");
    assert.deepEqual(bodyFraming(parsed), { kind: "length", length: 12 });
  });
});

Deno.test("isUpgradeRequest", async (t) => {
  const cases: Array<[string, string[], boolean]> = [
    ["websocket", ["websocket"], true],
    ["mixed case", ["WebSocket"], true],
    ["in a list", ["h2c, websocket"], true],
    ["with OWS", ["h2c ,\twebsocket\t"], true],
    ["second line", ["h2c", "websocket"], true],
    ["prefix only", ["websocketx"], false],
    ["versioned", ["websocket/13"], false],
    ["other protocol", ["h2c"], false],
    ["empty", [""], false],
    ["absent", [], false],
  ];
  for (const [name, values, expected] of cases) {
    await t.step(name, () => {
      const r = req(values.map((v) => ["upgrade", v] as [string, string]));
      assert.equal(isUpgradeRequest(r), expected);
    });
  }
  await t.step("a request without Upgrade parses fine (it is plain HTTP)", () => {
    assert.equal(isUpgradeRequest(expectComplete(SIMPLE)), false);
  });
});

Deno.test("toRequest", async (t) => {
  await t.step("origin-form: URL from Host and target", () => {
    const r = toRequest(expectComplete("GET /a/b?c=1 HTTP/1.1\r\nHost: example.com:8080\r\n\r\n"));
    assert.equal(r.url, "http://example.com:8080/a/b?c=1");
    assert.equal(r.method, "GET");
    assert.equal(r.body, null);
  });

  await t.step("https scheme", () => {
    const r = toRequest(expectComplete(SIMPLE), { scheme: "https" });
    assert.equal(r.url, "https://example.com/");
  });

  await t.step("IPv6 Host", () => {
    const r = toRequest(expectComplete("GET /x HTTP/1.1\r\nHost: [::1]:9000\r\n\r\n"));
    assert.equal(r.url, "http://[::1]:9000/x");
  });

  await t.step("absolute-form: Host is ignored", () => {
    const r = toRequest(
      expectComplete("GET http://other.example/p?q HTTP/1.1\r\nHost: example.com\r\n\r\n"),
    );
    assert.equal(r.url, "http://other.example/p?q");
  });

  await t.step("a target starting with // stays a path", () => {
    const r = toRequest(expectComplete("GET //evil.example/x HTTP/1.1\r\nHost: good\r\n\r\n"));
    assert.equal(new URL(r.url).host, "good");
  });

  await t.step("headers are copied, repeats combined by Headers", () => {
    const r = toRequest(
      expectComplete("GET / HTTP/1.1\r\nHost: h\r\nAccept: a\r\naccept: b\r\nX-L: caf\xe9\r\n\r\n"),
    );
    assert.equal(r.headers.get("accept"), "a, b");
    assert.equal(r.headers.get("host"), "h");
    assert.equal(r.headers.get("x-l"), "caf\u00e9");
  });

  await t.step("other methods get no body", () => {
    const r = toRequest(
      expectComplete("PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"),
    );
    assert.equal(r.method, "PUT");
    assert.equal(r.body, null);
  });

  await t.step("remote and signal", () => {
    const controller = new AbortController();
    const remote = { hostname: "127.0.0.1", port: 4242 };
    const r = toRequest(expectComplete(SIMPLE), { remote, signal: controller.signal });
    assert.deepEqual(requestRemote(r), remote);
    assert.equal(r.signal.aborted, false);
    controller.abort();
    assert.equal(r.signal.aborted, true);
    assert.equal(requestRemote(new Request("http://x/")), undefined);
  });

  const throwsCode = (fn: () => unknown, code: string) =>
    assert.throws(fn, (e) => e instanceof HandshakeError && e.code === code);

  const refusals: Array<[string, string[], string]> = [
    ["HTTP/1.0 without Host cannot be converted", ["GET / HTTP/1.0"], "INVALID_REQUEST_TARGET"],
    ["empty Host cannot be converted", ["GET / HTTP/1.1\r\nHost:"], "INVALID_REQUEST_TARGET"],
    ["port out of range", ["GET / HTTP/1.1\r\nHost: h:99999"], "INVALID_REQUEST_TARGET"],
    ["asterisk-form and authority-form", [
      "OPTIONS * HTTP/1.1\r\nHost: h",
      "CONNECT h:443 HTTP/1.1\r\nHost: h:443",
    ], "INVALID_REQUEST_TARGET"],
    // Syntactically an absolute-URI with scheme "example.com" (authority-form is only
    // recognizable by method), so the parser accepts it and the conversion refuses it.
    ["non-HTTP absolute URL", [
      "GET example.com:80 HTTP/1.1\r\nHost: h",
      "GET ftp://h/x HTTP/1.1\r\nHost: h",
      "GET http://[bad/ HTTP/1.1\r\nHost: h",
    ], "INVALID_REQUEST_TARGET"],
    ["forbidden methods", ["TRACE / HTTP/1.1\r\nHost: h"], "UNSUPPORTED_METHOD"],
  ];
  for (const [name, heads, code] of refusals) {
    await t.step(name, () => {
      for (const head of heads) {
        throwsCode(() => toRequest(expectComplete(`${head}\r\n\r\n`)), code);
      }
    });
  }

  await t.step("bad Host in a hand-built request", () => {
    for (const host of ["a b", "x@y", "a/b", "[::1"]) {
      const r = new ParsedRequest({
        method: "GET",
        target: "/",
        version: "1.1",
        headers: [["host", host]],
      });
      throwsCode(() => toRequest(r), "INVALID_REQUEST_TARGET");
    }
  });
});

Deno.test("http_head helpers", async (t) => {
  await t.step("isToken", () => {
    assert.equal(isToken("chat"), true);
    assert.equal(isToken("v1.chat+json"), true);
    for (const bad of ["", "a b", "a,b", "a;b", 'a"', "a/b", "é", "\u0100", "a\tb"]) {
      assert.equal(isToken(bad), false, JSON.stringify(bad));
    }
  });

  await t.step("listHasToken", () => {
    assert.equal(listHasToken("keep-alive, Upgrade", "upgrade"), true);
    assert.equal(listHasToken("UPGRADE", "upgrade"), true);
    assert.equal(listHasToken(",,upgrade,,", "upgrade"), true);
    assert.equal(listHasToken("upgrades", "upgrade"), false);
    assert.equal(listHasToken("up grade", "upgrade"), false);
    assert.equal(listHasToken("", "upgrade"), false);
    assert.equal(listHasToken(null, "upgrade"), false);
  });

  await t.step("splitList honours quoted strings", () => {
    assert.deepEqual(splitList(` a , "b,c" ,, d;x="1,2" `), ["a", `"b,c"`, `d;x="1,2"`]);
    assert.deepEqual(splitList(`"a\\",b", c`), [`"a\\",b"`, "c"]);
    assert.deepEqual(splitList(""), []);
  });

  await t.step("trimOws only trims SP and HTAB", () => {
    assert.equal(trimOws(" \t a b \t "), "a b");
    assert.equal(trimOws("\u00a0a\n"), "\u00a0a\n");
    assert.equal(trimOws(""), "");
  });

  await t.step("decodeLatin1 / encodeLatin1 round-trip every byte", () => {
    const all = new Uint8Array(256).map((_, i) => i);
    const s = decodeLatin1(all, 0, 256);
    assert.equal(s.length, 256);
    for (let i = 0; i < 256; i++) assert.equal(s.charCodeAt(i), i);
    assert.deepEqual(encodeLatin1(s, 0), all);
    const withExtra = encodeLatin1("ab", 3);
    assert.deepEqual(withExtra, Uint8Array.of(0x61, 0x62, 0, 0, 0));
  });

  await t.step("isValidHost", () => {
    for (
      const ok of ["", "a", "a.b-c_d~e", "a:1", "a:", "[::1]", "[v1.x]:80", "%41b", "a!$&'()*+,;="]
    ) {
      assert.equal(isValidHost(ok), true, ok);
    }
    for (const bad of ["a b", "a/b", "a@b", ":1", "[]", "[::1", "[::1]x", "a:b", "%4", "é"]) {
      assert.equal(isValidHost(bad), false, bad);
    }
  });

  await t.step("isValidHost: IP literals are RFC 3986 IPv6address or IPvFuture", () => {
    // Found by the http-host fuzz property: any unreserved, sub-delim or ":" characters used
    // to pass between brackets, so "[zz]" or "[:::]" was a valid Host.
    const ok = [
      "[::]",
      "[::1]:8080",
      "[1:2:3:4:5:6:7:8]",
      "[1:2:3:4:5:6:7::]",
      "[fe80::1]",
      "[2001:db8::]",
      "[::ffff:1.2.3.4]",
      "[1:2:3:4:5:6:1.2.3.4]",
      "[v1.x]",
      "[V1F.a:b]",
    ];
    for (const host of ok) assert.equal(isValidHost(host), true, host);
    const bad = [
      "[zz]",
      "[:::]",
      "[:1]",
      "[1:]",
      "[1.2.3.4]",
      "[1:2:3:4:5:6:7]",
      "[1:2:3:4:5:6:7:8:9]",
      "[1:2:3:4:5:6:7:8::]",
      "[1::2::3]",
      "[12345::]",
      "[1:2:3:4:5:6:7:1.2.3.4]",
      "[::1.2.3.256]",
      "[::01.2.3.4]",
      "[::1.2.3]",
      "[v.x]",
      "[vx]",
      "[v1.]",
    ];
    for (const host of bad) assert.equal(isValidHost(host), false, host);
    assert.equal(isValidHost("a", true), false);
    assert.equal(isValidHost("a:", true), false);
    assert.equal(isValidHost("a:1", true), true);
  });

  await t.step("HeaderList lowercases names of hand-built lists", () => {
    const h = new HeaderList([["X-A", "1"], ["x-a", "2"]]);
    assert.deepEqual(h.headers, [["x-a", "1"], ["x-a", "2"]]);
    const lower: Array<[string, string]> = [["x", "1"]];
    assert.equal(new HeaderList(lower).headers, lower);
  });

  await t.step("validateHeaders accepts every HeadersInit shape", () => {
    const none = new Set<string>();
    assert.deepEqual(validateHeaders({ "X-A": " 1 " }, none), [["X-A", "1"]]);
    assert.deepEqual(validateHeaders([["X-A", "1"], ["X-A", "2"]], none), [["X-A", "1"], [
      "X-A",
      "2",
    ]]);
    assert.deepEqual(validateHeaders(new Headers({ "X-A": "1" }), none), [["x-a", "1"]]);
    assert.deepEqual(validateHeaders(new Map([["x-b", "2"]]), none), [["x-b", "2"]]);
    assert.deepEqual(validateHeaders(undefined, none), []);
  });

  await t.step("validateHeaders refusals", () => {
    const none = new Set<string>();
    const cases: Array<[HeadersInit, string]> = [
      [{ "X-A": "a\r\nSet-Cookie: x=1" }, "HEADER_INJECTION"],
      [{ "X-A": "a\nb" }, "HEADER_INJECTION"],
      [{ "X-A": "a\rb" }, "HEADER_INJECTION"],
      [{ "X-A": "a\0b" }, "HEADER_INJECTION"],
      [{ "X-A": "trailing\r\n" }, "HEADER_INJECTION"],
      [{ "X-A\r\nY": "1" }, "HEADER_INJECTION"],
      [{ "X-A\n": "1" }, "HEADER_INJECTION"],
      [{ "X A": "1" }, "INVALID_HEADER"],
      [{ "X-A:": "1" }, "INVALID_HEADER"],
      [{ "": "1" }, "INVALID_HEADER"],
      [{ "X-A": "\x01" }, "INVALID_HEADER"],
      [{ "X-A": "\x7f" }, "INVALID_HEADER"],
      [{ "X-A": "\u0100" }, "INVALID_HEADER"],
      [{ "X-A": "😀" }, "INVALID_HEADER"],
      [[["X-A", "1", "2"]], "INVALID_HEADER"],
      [[["X-A"]], "INVALID_HEADER"],
    ];
    for (const [init, code] of cases) {
      assert.throws(
        () => validateHeaders(init, none),
        (e) => e instanceof HandshakeError && e.code === code,
        JSON.stringify(init),
      );
    }
    assert.throws(
      () => validateHeaders({ Connection: "x" }, new Set(["connection"])),
      (e) => e instanceof HandshakeError && e.code === "RESERVED_HEADER",
    );
  });
});
