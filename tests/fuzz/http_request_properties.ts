/**
 * Fuzz properties of the server side of the opening handshake: the HTTP request-head parser
 * (protocol/http/request.ts `HttpRequestParser`) and the upgrade validation
 * (protocol/handshake/server.ts `validateUpgrade`):
 *
 * - generated valid requests (any field order, name case and optional whitespace, repeated
 *   fields, list values, every target form, leading empty lines) parse to exactly their parts
 *   in every chunking, consume exactly the head, respect `maxHeaderBytes` (431 beyond it) and
 *   parse again when pipelined;
 * - mutated requests never throw, agree across chunkings, fail with 400, 431 or 505 and a
 *   message (sticky until reset), and what they accept re-reads the same with a reference
 *   splitter and obeys the Host rules;
 * - generated valid upgrades are always accepted, with the key and protocols sent, and the
 *   RFC 6455 accept value (SHA-1 by node:crypto) that the client side then accepts;
 * - mutated upgrades never throw and are accepted exactly when an independent statement of
 *   RFC 6455 §4.2.1 accepts them.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { HttpRequestParser } from "../../protocol/http/request.ts";
import { HttpResponseParser } from "../../protocol/http/response.ts";
import { isValidHost } from "../../protocol/http/head.ts";
import {
  acceptKey,
  buildUpgradeResponse,
  validateUpgrade,
} from "../../protocol/handshake/server.ts";
import { validateUpgradeResponse } from "../../protocol/handshake/client.ts";
import { type Arbitrary, fc } from "./fast_check.ts";
import {
  anyCase,
  extraFieldArb,
  feedHeads,
  fieldArb,
  fieldLine,
  type FieldSpec,
  hostArb,
  latin1Bytes,
  listValueArb,
  maxHeaderBytesArb,
  owsArb,
  parsedField,
  requestLineArb,
  splitHead,
  stripOws,
  TOKEN_CHARS,
  tokenArb,
} from "./http_heads.ts";
import { type RequestOutcome, requestOutcome } from "../fixtures/http_outcomes.ts";
import { applyMutations, chunkPlan, mutation } from "./mutate.ts";
import { defineProperty, expect, type FuzzProperty } from "./property.ts";

// ---------------------------------------------------------------------------------------------
// Valid requests

interface RequestSpec {
  readonly leading: number;
  readonly method: string;
  readonly target: string;
  /** HTTP/1.x minor digit: 0 is "1.0", any other "1.1". */
  readonly minor: number;
  /** The Host field (absent only in HTTP/1.0) and where it goes among the others. */
  readonly host: FieldSpec | null;
  readonly hostAt: number;
  readonly fields: FieldSpec[];
  /** Bytes after the head (a body or frames): never consumed. */
  readonly trailing: Uint8Array;
}

const requestSpecArb: Arbitrary<RequestSpec> = fc.record({
  leading: fc.oneof({ weight: 4, arbitrary: fc.constant(0) }, {
    weight: 1,
    arbitrary: fc.integer({ min: 1, max: 2 }),
  }),
  line: requestLineArb,
  minor: fc.oneof({ weight: 4, arbitrary: fc.constant(1) }, {
    weight: 1,
    arbitrary: fc.integer({ min: 0, max: 9 }),
  }),
  host: fieldArb(anyCase("host"), hostArb),
  dropHost: fc.boolean(),
  hostAt: fc.nat(),
  fields: fc.array(extraFieldArb(["host"]), { maxLength: 8 }),
  trailing: fc.uint8Array({ maxLength: 8 }),
}).map(({ line, host, dropHost, minor, ...rest }) => ({
  ...rest,
  ...line,
  minor,
  host: dropHost && minor === 0 ? null : host,
}));

function serializeRequest(spec: RequestSpec): { head: string; fields: FieldSpec[] } {
  const fields = spec.fields.slice();
  if (spec.host !== null) fields.splice(spec.hostAt % (fields.length + 1), 0, spec.host);
  const head = "\r\n".repeat(spec.leading) +
    `${spec.method} ${spec.target} HTTP/1.${spec.minor}\r\n` +
    fields.map(fieldLine).join("") + "\r\n";
  return { head, fields };
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

const validRequests = defineProperty({
  name: "http-request-valid",
  description:
    "valid request heads parse to their parts in any chunking, consume exactly the head, obey " +
    "maxHeaderBytes and parse again when pipelined",
  arbitrary: fc.tuple(
    requestSpecArb,
    maxHeaderBytesArb,
    chunkPlan(),
    fc.nat(),
  ),
  check: ([spec, maxHeaderBytes, plan, guardSeed]) => {
    const { head, fields } = serializeRequest(spec);
    const headBytes = latin1Bytes(head);
    const bytes = concat(headBytes, spec.trailing);
    const options = maxHeaderBytes === null ? {} : { maxHeaderBytes };
    const { view, parser } = feedHeads(
      bytes,
      plan,
      guardSeed,
      () => new HttpRequestParser(options),
      requestOutcome,
    );
    const limit = maxHeaderBytes ?? 8192;
    const expected: RequestOutcome = head.length > limit
      ? { kind: "error", status: 431, message: `message head larger than ${limit} bytes` }
      : {
        kind: "complete",
        end: head.length,
        method: spec.method,
        target: spec.target,
        version: spec.minor === 0 ? "1.0" : "1.1",
        headers: fields.map(parsedField),
      };
    const got = JSON.stringify(view);
    expect(
      got === JSON.stringify(expected),
      () =>
        `request ${JSON.stringify(head)} (maxHeaderBytes ${maxHeaderBytes})\n  got      ${got}\n` +
        `  expected ${JSON.stringify(expected)}`,
    );
    if (expected.kind === "error") {
      expect(
        parser.push(headBytes, 0, headBytes.length) === parser.push(headBytes, 0, 1),
        () => "the error is not sticky",
      );
      return;
    }
    // The parser is ready for the next request of the connection: two heads in one read.
    const twice = concat(headBytes, headBytes);
    const pipelined = new HttpRequestParser(options);
    const first = pipelined.push(twice, 0, twice.length);
    expect(
      first.kind === "complete" && first.consumed === head.length,
      () => `first of two pipelined heads: ${JSON.stringify(first)}`,
    );
    const second = pipelined.push(twice, head.length, twice.length);
    expect(
      second.kind === "complete" && second.consumed === head.length &&
        JSON.stringify(second.request.headers) === JSON.stringify(fields.map(parsedField)),
      () => `second of two pipelined heads: ${JSON.stringify(second)}`,
    );
  },
});

// ---------------------------------------------------------------------------------------------
// Mutated requests

/** Bytes that delimit or break an HTTP head. */
const HTTP_SPECIAL = [
  0x0d,
  0x0a,
  0x20,
  0x09,
  0x3a,
  0x00,
  0x7f,
  0x80,
  0xff,
  0x23,
  0x2f,
  0x2c,
  0x48,
  0x31,
  0x2a,
];

const mutatedRequests = defineProperty({
  name: "http-request-mutated",
  description:
    "mutated request heads never throw, agree in every chunking, fail with 400/431/505 (sticky) " +
    "or give a head that re-reads the same and obeys the Host rules",
  arbitrary: fc.tuple(
    requestSpecArb,
    fc.array(mutation(HTTP_SPECIAL), { minLength: 1, maxLength: 4 }),
    maxHeaderBytesArb,
    chunkPlan(),
    fc.nat(),
  ),
  check: ([spec, edits, maxHeaderBytes, plan, guardSeed]) => {
    const { head } = serializeRequest(spec);
    const bytes = applyMutations(concat(latin1Bytes(head), spec.trailing), edits);
    const options = maxHeaderBytes === null ? {} : { maxHeaderBytes };
    const limit = maxHeaderBytes ?? 8192;
    const { view, parser, fed } = feedHeads(
      bytes,
      plan,
      guardSeed,
      () => new HttpRequestParser(options),
      requestOutcome,
    );
    const what = () =>
      `input ${JSON.stringify(String.fromCharCode(...bytes))}: ${JSON.stringify(view)}`;
    if (view.kind === "error") {
      expect([400, 431, 505].includes(view.status) && view.message.length > 0, what);
      if (view.status === 431) expect(bytes.length >= limit, what);
      const again = parser.push(bytes, 0, bytes.length);
      expect(again === fed.result, () => `error not sticky: ${JSON.stringify(again)}; ${what()}`);
      // Until reset: then the unmutated head parses.
      parser.reset();
      const valid = latin1Bytes(serializeRequest(spec).head);
      const fresh = parser.push(valid, 0, valid.length);
      expect(
        fresh.kind === "complete" || (maxHeaderBytes !== null && valid.length > maxHeaderBytes),
        () => `after reset: ${JSON.stringify(fresh)}; ${what()}`,
      );
      return;
    }
    if (view.kind === "incomplete") {
      expect(bytes.length < limit, () => `incomplete past maxHeaderBytes; ${what()}`);
      return;
    }
    expect(view.end <= limit, () => `accepted a head over maxHeaderBytes; ${what()}`);
    const split = splitHead(bytes, view.end);
    expect(split.leading <= 2, what);
    const parts = split.startLine.split(" ");
    expect(parts.length === 3, () => `request line without exactly two spaces; ${what()}`);
    const [method, target, version] = parts;
    expect(
      method === view.method && [...method].every((c) => TOKEN_CHARS.includes(c)),
      () => `method; ${what()}`,
    );
    expect(
      target === view.target && target !== "" && !target.includes("#"),
      () => `target; ${what()}`,
    );
    expect(/^HTTP\/1\.[0-9]$/.test(version), () => `version; ${what()}`);
    expect(view.version === (version === "HTTP/1.0" ? "1.0" : "1.1"), () => `version; ${what()}`);
    expect(
      JSON.stringify(split.fields) === JSON.stringify(view.headers),
      () => `fields differ from a line-by-line reading ${JSON.stringify(split.fields)}; ${what()}`,
    );
    const hosts = view.headers.filter(([n]) => n === "host").length;
    expect(
      view.version === "1.1" ? hosts === 1 : hosts <= 1,
      () => `Host count ${hosts}; ${what()}`,
    );
  },
});

// ---------------------------------------------------------------------------------------------
// Upgrade requests

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

function base64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    s += B64[n >> 18] + B64[(n >> 12) & 63];
    s += i + 1 < bytes.length ? B64[(n >> 6) & 63] : "=";
    s += i + 2 < bytes.length ? B64[n & 63] : "=";
  }
  return s;
}

/** RFC 6455 §4.2.2: base64(SHA-1(key + GUID)), by node:crypto. */
export function referenceAccept(key: string): string {
  return createHash("sha1").update(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11", "latin1")
    .digest("base64");
}

interface UpgradeSpec {
  readonly target: string;
  readonly host: FieldSpec;
  readonly key: string;
  readonly fields: FieldSpec[];
  /** Offered subprotocols in order, and how they are spread over lines. */
  readonly protocols: string[];
  readonly order: number[];
  readonly trailing: Uint8Array;
}

const upgradeSpecArb: Arbitrary<UpgradeSpec> = fc.record({
  target: fc.constantFrom("/", "/chat", "/a?b=c"),
  host: fieldArb(anyCase("host"), hostArb),
  key: fc.uint8Array({ minLength: 16, maxLength: 16 }).map(base64),
  upgrade: fc.array(
    fieldArb(
      anyCase("upgrade"),
      fc.tuple(fc.mixedCase(fc.constant("websocket")), fc.constantFrom("", "h2c, ", "foo/2, ")).map(
        (
          [ws, other],
        ) => other + ws,
      ),
    ),
    { minLength: 1, maxLength: 2 },
  ),
  connection: fc.tuple(
    fieldArb(
      anyCase("connection"),
      fc.tuple(fc.mixedCase(fc.constant("upgrade")), fc.constantFrom("", "keep-alive,", "close ,"))
        .map((
          [u, other],
        ) => other + " " + u),
    ),
    fc.option(fieldArb(anyCase("connection"), fc.constantFrom("keep-alive", "te")), { freq: 3 }),
  ),
  version: fieldArb(anyCase("sec-websocket-version"), fc.constant("13")),
  protocols: fc.uniqueArray(tokenArb(8), { maxLength: 4 }),
  splitProtocols: fc.boolean(),
  extensions: fc.array(fieldArb(anyCase("sec-websocket-extensions"), listValueArb), {
    maxLength: 2,
  }),
  contentLengthZero: fc.option(fieldArb(anyCase("content-length"), fc.constantFrom("0", "00")), {
    freq: 5,
  }),
  extra: fc.array(
    extraFieldArb([
      "host",
      "upgrade",
      "connection",
      "sec-websocket-key",
      "sec-websocket-version",
      "sec-websocket-protocol",
      "sec-websocket-extensions",
      "content-length",
      "transfer-encoding",
    ]),
    { maxLength: 5 },
  ),
  keyCase: anyCase("sec-websocket-key"),
  keyOws: fc.tuple(owsArb, owsArb),
  shuffle: fc.array(fc.nat(), { minLength: 16, maxLength: 16 }),
  trailing: fc.uint8Array({ maxLength: 8 }),
}).map((g) => {
  const fields: FieldSpec[] = [
    g.host,
    ...g.upgrade,
    g.connection[0],
    g.version,
    ...g.extensions,
    ...g.extra,
  ];
  if (g.connection[1] !== null) fields.push(g.connection[1]);
  if (g.contentLengthZero !== null) fields.push(g.contentLengthZero);
  fields.push({ name: g.keyCase, value: "", before: g.keyOws[0], after: g.keyOws[1] });
  if (g.protocols.length > 0) {
    const lines = g.splitProtocols ? g.protocols.map((p) => [p]) : [g.protocols];
    for (const line of lines) {
      fields.push({
        name: "Sec-WebSocket-Protocol",
        value: line.join(", "),
        before: " ",
        after: "",
      });
    }
  }
  // Fisher-Yates with the generated numbers, keeping the protocol lines in their order.
  const order = fields.map((_, i) => i);
  for (let i = order.length - 1; i > 0; i--) {
    const j = g.shuffle[i % g.shuffle.length] % (i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  return {
    target: g.target,
    host: g.host,
    key: g.key,
    fields,
    protocols: g.protocols,
    order,
    trailing: g.trailing,
  };
});

function serializeUpgrade(spec: UpgradeSpec): string {
  const protocolLines = spec.fields.filter((f) => f.name === "Sec-WebSocket-Protocol");
  let p = 0;
  const lines = spec.order.map((i) => {
    const f = spec.fields[i];
    if (f.name === "Sec-WebSocket-Protocol") return fieldLine(protocolLines[p++]);
    if (f.name.toLowerCase() === "sec-websocket-key") return fieldLine({ ...f, value: spec.key });
    return fieldLine(f);
  });
  return `GET ${spec.target} HTTP/1.1\r\n${lines.join("")}\r\n`;
}

const validUpgrades = defineProperty({
  name: "upgrade-valid",
  description:
    "valid upgrade requests are accepted in any chunking with their key and protocols, and the " +
    "RFC accept value that the client side accepts",
  arbitrary: fc.tuple(upgradeSpecArb, chunkPlan(), fc.nat(), fc.nat()),
  check: ([spec, plan, guardSeed, choice]) => {
    const head = serializeUpgrade(spec);
    const bytes = concat(latin1Bytes(head), spec.trailing);
    const { fed, view } = feedHeads(
      bytes,
      plan,
      guardSeed,
      () => new HttpRequestParser(),
      requestOutcome,
    );
    expect(fed.result?.kind === "complete", () => `not parsed: ${JSON.stringify(view)}\n${head}`);
    if (fed.result?.kind !== "complete") return;
    expect(view.kind === "complete" && view.end === head.length, () => `consumed; ${head}`);
    const result = validateUpgrade(fed.result.request);
    expect(result.ok, () => `refused: ${JSON.stringify(result)}\n${JSON.stringify(head)}`);
    if (!result.ok) return;
    expect(result.key === spec.key, () => `key ${result.key}, sent ${spec.key}`);
    expect(
      JSON.stringify(result.protocols) === JSON.stringify(spec.protocols),
      () => `protocols ${JSON.stringify(result.protocols)}, sent ${JSON.stringify(spec.protocols)}`,
    );
    const accept = referenceAccept(spec.key);
    expect(acceptKey(result.key) === accept, () => `acceptKey(${spec.key}) is not ${accept}`);
    const protocol = spec.protocols.length === 0
      ? null
      : spec.protocols[choice % spec.protocols.length];
    const response = buildUpgradeResponse({ key: result.key, protocol, offered: result.protocols });
    const text = String.fromCharCode(...response);
    expect(text.includes(`\r\nSec-WebSocket-Accept: ${accept}\r\n`), () => `response ${text}`);
    const parsed = new HttpResponseParser().push(response, 0, response.length);
    expect(
      parsed.kind === "complete" && parsed.consumed === response.length,
      () => `response does not parse: ${JSON.stringify(parsed)}`,
    );
    if (parsed.kind !== "complete") return;
    const client = validateUpgradeResponse(parsed.response, spec.key, spec.protocols);
    expect(
      client.ok && client.protocol === protocol,
      () => `client refuses: ${JSON.stringify(client)}`,
    );
  },
});

/** RFC 6455 §4.2.1, restated: whether a server must accept this parsed request. */
function acceptableUpgrade(
  method: string,
  version: string,
  headers: ReadonlyArray<readonly [string, string]>,
): boolean {
  if (method !== "GET" || version !== "1.1") return false;
  const all = (name: string) => headers.filter(([n]) => n === name).map(([, v]) => v);
  const tokens = (value: string) => value.split(",").map((t) => stripOws(t).toLowerCase());
  if (all("host").length !== 1) return false;
  if (all("transfer-encoding").length > 0) return false;
  for (const cl of all("content-length")) {
    for (const part of cl.split(",")) {
      const s = stripOws(part);
      if (!/^[0-9]+$/.test(s) || Number(s) !== 0) return false;
    }
  }
  if (!all("upgrade").some((v) => tokens(v).includes("websocket"))) return false;
  if (!all("connection").some((v) => tokens(v).includes("upgrade"))) return false;
  const versions = all("sec-websocket-version");
  if (versions.length !== 1 || versions[0] !== "13") return false;
  const keys = all("sec-websocket-key");
  if (keys.length !== 1 || !/^[A-Za-z0-9+/]{21}[AQgw]==$/.test(keys[0])) return false;
  const seen: string[] = [];
  for (const line of all("sec-websocket-protocol")) {
    for (const part of line.split(",")) {
      const p = stripOws(part);
      if (p === "") continue;
      if (![...p].every((c) => TOKEN_CHARS.includes(c)) || seen.includes(p)) return false;
      seen.push(p);
    }
  }
  return true;
}

/** Bytes and words that matter to an upgrade. */
const UPGRADE_SPECIAL = [...HTTP_SPECIAL, 0x2b, 0x3d, 0x41, 0x77, 0x57, 0x2c, 0x30, 0x33];

const mutatedUpgrades = defineProperty({
  name: "upgrade-mutated",
  description:
    "mutated upgrade requests never throw and are accepted exactly when RFC 6455 §4.2.1, " +
    "restated independently, accepts them",
  arbitrary: fc.tuple(
    upgradeSpecArb,
    fc.array(mutation(UPGRADE_SPECIAL), { minLength: 1, maxLength: 3 }),
  ),
  check: ([spec, edits]) => {
    const bytes = applyMutations(latin1Bytes(serializeUpgrade(spec)), edits);
    const result = new HttpRequestParser().push(bytes, 0, bytes.length);
    if (result.kind !== "complete") return;
    const req = result.request;
    const verdict = validateUpgrade(req);
    const expected = acceptableUpgrade(req.method, req.version, req.headers);
    const what = () =>
      `${JSON.stringify(verdict)} for ${
        JSON.stringify(String.fromCharCode(...bytes.subarray(0, result.consumed)))
      }`;
    expect(
      verdict.ok === expected,
      () => `expected ${expected ? "accepted" : "refused"}: ${what()}`,
    );
    if (verdict.ok) {
      expect(
        acceptKey(verdict.key) === referenceAccept(verdict.key),
        () => `accept key; ${what()}`,
      );
    } else {
      expect([400, 405, 426].includes(verdict.status) && verdict.message !== "", what);
      expect(
        (verdict.status === 405) === (req.method !== "GET"),
        () => `405 iff not GET; ${what()}`,
      );
    }
  },
});

// ---------------------------------------------------------------------------------------------
// Host values

const UNRESERVED_RE = "[A-Za-z0-9\\-._~]";
const SUB_DELIMS_RE = "[!$&'()*+,;=]";
const REG_NAME = new RegExp(`^(?:${UNRESERVED_RE}|%[0-9A-Fa-f]{2}|${SUB_DELIMS_RE})*$`);
const IPV_FUTURE = new RegExp(`^[vV][0-9A-Fa-f]+\\.(?:${UNRESERVED_RE}|${SUB_DELIMS_RE}|:)+$`);

function isIPv4(s: string): boolean {
  const parts = s.split(".");
  return parts.length === 4 &&
    parts.every((p) => /^(?:[0-9]|[1-9][0-9]|1[0-9]{2}|2[0-4][0-9]|25[0-5])$/.test(p));
}

/** RFC 3986 §3.2.2 IPv6address, by counting groups rather than by its nine alternatives. */
function isIPv6(s: string): boolean {
  const halves = s.split("::");
  if (halves.length > 2) return false;
  const groups = halves.map((h) => (h === "" ? [] : h.split(":")));
  const all = groups.flat();
  // An IPv4 tail counts as two groups and may only end the address.
  let count = 0;
  for (let i = 0; i < all.length; i++) {
    const g = all[i];
    const last = i === all.length - 1 && s.endsWith(g) && g !== "";
    if (last && g.includes(".")) {
      if (!isIPv4(g)) return false;
      count += 2;
    } else if (/^[0-9A-Fa-f]{1,4}$/.test(g)) {
      count++;
    } else {
      return false;
    }
  }
  return halves.length === 2 ? count <= 7 : count === 8;
}

/**
 * RFC 9110 §7.2 `Host = uri-host [ ":" port ]` with RFC 3986's uri-host (IP-literal,
 * IPv4address or reg-name), restated; plus the parser's documented choices: a port after an
 * empty host (":80") is refused, and `requirePort` (authority-form) wants digits after ":".
 */
function referenceHost(host: string, requirePort: boolean): boolean {
  let name = host;
  let port: string | null = null;
  if (host.startsWith("[")) {
    const close = host.indexOf("]");
    if (close === -1) return false;
    const literal = host.slice(1, close);
    if (!isIPv6(literal) && !IPV_FUTURE.test(literal)) return false;
    const rest = host.slice(close + 1);
    if (rest !== "") {
      if (!rest.startsWith(":")) return false;
      port = rest.slice(1);
    }
    name = "[]";
  } else {
    const colon = host.indexOf(":");
    if (colon !== -1) {
      name = host.slice(0, colon);
      port = host.slice(colon + 1);
      if (name === "") return false;
    }
    if (!REG_NAME.test(name)) return false;
  }
  if (port === null) return !requirePort;
  if (requirePort && port === "") return false;
  return /^[0-9]*$/.test(port);
}

/** Host-like strings: valid forms, then edited with the characters that matter to them. */
const hostCandidateArb: Arbitrary<string> = fc.oneof(
  { weight: 2, arbitrary: hostArb },
  {
    weight: 3,
    arbitrary: fc.tuple(
      fc.oneof(
        fc.ipV6(),
        fc.ipV4(),
        fc.constantFrom("::", "::1", "1::", "v1.x", "vF.a:b", "1:2:3:4:5:6:7:8", "::ffff:1.2.3.4"),
      ),
      fc.array(
        fc.tuple(
          fc.nat(),
          fc.constantFrom(":", "::", ".", "[", "]", "v", "1", "ffff", "g", "%", "1.2.3.4", ""),
        ),
        { maxLength: 3 },
      ),
      fc.constantFrom("", ":", ":80", ":x", "x"),
      fc.boolean(),
    ).map(([base, edits, suffix, bracket]) => {
      let h = base;
      for (const [at, text] of edits) {
        const i = at % (h.length + 1);
        h = h.slice(0, i) + text + h.slice(i + (text === "" ? 1 : 0));
      }
      return bracket ? `[${h}]${suffix}` : h + suffix;
    }),
  },
);

const hosts = defineProperty({
  name: "http-host",
  description:
    "a Host is accepted (and a request with it parses) exactly when RFC 9110/3986 uri-host " +
    '[":" port], restated independently, allows it',
  arbitrary: fc.tuple(hostCandidateArb, fc.boolean()),
  check: ([host, requirePort]) => {
    const expected = referenceHost(host, requirePort);
    expect(
      isValidHost(host, requirePort) === expected,
      () => `isValidHost(${JSON.stringify(host)}, ${requirePort}) should be ${expected}`,
    );
    if (requirePort) return;
    const head = latin1Bytes(`GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
    const result = new HttpRequestParser().push(head, 0, head.length);
    expect(
      (result.kind === "complete") === expected,
      () => `Host ${JSON.stringify(host)}: ${JSON.stringify(result)}`,
    );
  },
});

/** The request-side properties, in the order they run. */
export const REQUEST_PROPERTIES: readonly FuzzProperty[] = [
  validRequests,
  mutatedRequests,
  validUpgrades,
  mutatedUpgrades,
  hosts,
];
