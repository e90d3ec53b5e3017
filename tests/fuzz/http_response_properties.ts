/**
 * Fuzz properties of the client side of the opening handshake: the HTTP response-head parser
 * (protocol/http/response.ts `HttpResponseParser`) and the validation of the server's answer
 * (protocol/handshake/client.ts `validateUpgradeResponse`):
 *
 * - generated valid responses (any status, reason or none, field order, name case, optional
 *   whitespace, repeated fields) parse to exactly their parts in every chunking, consume
 *   exactly the head and respect `maxHeaderBytes`;
 * - mutated responses never throw, agree across chunkings, fail with a message (sticky, too
 *   large only past the limit) or give a head that re-reads the same;
 * - generated valid 101 answers are accepted with the chosen subprotocol; mutated ones never
 *   throw and are accepted exactly when an independent statement of RFC 6455 §4.1 accepts them.
 *
 * @module
 */

import { HttpResponseParser, type ResponseParseResult } from "../../protocol/http/response.ts";
import { validateUpgradeResponse } from "../../protocol/handshake/client.ts";
import { type Arbitrary, fc } from "./fast_check.ts";
import {
  anyCase,
  extraFieldArb,
  feedHeads,
  fieldArb,
  fieldLine,
  type FieldSpec,
  latin1Bytes,
  listValueArb,
  maxHeaderBytesArb,
  parsedField,
  splitHead,
  stripOws,
  tokenArb,
} from "./http_heads.ts";
import { type ResponseOutcome, responseOutcome } from "../fixtures/http_outcomes.ts";
import { referenceAccept } from "./http_request_properties.ts";
import { applyMutations, chunkPlan, mutation } from "./mutate.ts";
import { defineProperty, expect, type FuzzProperty } from "./property.ts";

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** A reason phrase: HTAB, SP, VCHAR, obs-text (RFC 9112 §4). */
const reasonArb: Arbitrary<string> = fc.array(
  fc.oneof(
    { weight: 8, arbitrary: fc.integer({ min: 0x21, max: 0x7e }) },
    { weight: 2, arbitrary: fc.constantFrom(0x20, 0x09) },
    { weight: 1, arbitrary: fc.integer({ min: 0x80, max: 0xff }) },
  ),
  { maxLength: 24 },
).map((codes) => String.fromCharCode(...codes));

interface ResponseSpec {
  readonly minor: number;
  readonly status: number;
  /** null: the status line ends after the code (no space). */
  readonly reason: string | null;
  readonly fields: FieldSpec[];
  readonly trailing: Uint8Array;
}

const responseSpecArb: Arbitrary<ResponseSpec> = fc.record({
  minor: fc.oneof(
    { weight: 4, arbitrary: fc.constant(1) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 9 }) },
  ),
  status: fc.oneof(
    { weight: 2, arbitrary: fc.constant(101) },
    { weight: 3, arbitrary: fc.integer({ min: 100, max: 599 }) },
  ),
  reason: fc.option(
    fc.oneof(fc.constantFrom("Switching Protocols", "OK", ""), reasonArb),
    { freq: 4 },
  ),
  fields: fc.array(extraFieldArb([]), { maxLength: 8 }),
  trailing: fc.uint8Array({ maxLength: 8 }),
});

function serializeResponse(spec: ResponseSpec, fields: readonly FieldSpec[] = spec.fields): string {
  const code = String(spec.status).padStart(3, "0");
  const reason = spec.reason === null ? "" : ` ${spec.reason}`;
  return `HTTP/1.${spec.minor} ${code}${reason}\r\n${fields.map(fieldLine).join("")}\r\n`;
}

const validResponses = defineProperty({
  name: "http-response-valid",
  description:
    "valid response heads parse to their parts in any chunking, consume exactly the head and " +
    "obey maxHeaderBytes",
  arbitrary: fc.tuple(responseSpecArb, maxHeaderBytesArb, chunkPlan(), fc.nat()),
  check: ([spec, maxHeaderBytes, plan, guardSeed]) => {
    const head = serializeResponse(spec);
    const headBytes = latin1Bytes(head);
    const options = maxHeaderBytes === null ? {} : { maxHeaderBytes };
    const { view, parser } = feedHeads(
      concat(headBytes, spec.trailing),
      plan,
      guardSeed,
      () => new HttpResponseParser(options),
      responseOutcome,
    );
    const limit = maxHeaderBytes ?? 8192;
    const expected: ResponseOutcome = head.length > limit
      ? { kind: "error", tooLarge: true, message: `message head larger than ${limit} bytes` }
      : {
        kind: "complete",
        end: head.length,
        version: spec.minor === 0 ? "1.0" : "1.1",
        status: spec.status,
        reason: spec.reason ?? "",
        headers: spec.fields.map(parsedField),
      };
    const got = JSON.stringify(view);
    expect(
      got === JSON.stringify(expected),
      () =>
        `response ${JSON.stringify(head)} (maxHeaderBytes ${maxHeaderBytes})\n  got      ${got}\n` +
        `  expected ${JSON.stringify(expected)}`,
    );
    if (expected.kind === "error") {
      expect(
        parser.push(headBytes, 0, headBytes.length) === parser.push(headBytes, 0, 1),
        () => "the error is not sticky",
      );
    }
  },
});

const HTTP_SPECIAL = [0x0d, 0x0a, 0x20, 0x09, 0x3a, 0x00, 0x7f, 0x80, 0xff, 0x2c, 0x48, 0x31, 0x30];

const mutatedResponses = defineProperty({
  name: "http-response-mutated",
  description:
    "mutated response heads never throw, agree in every chunking, fail with a message (sticky) " +
    "or give a head that re-reads the same",
  arbitrary: fc.tuple(
    responseSpecArb,
    fc.array(mutation(HTTP_SPECIAL), { minLength: 1, maxLength: 4 }),
    maxHeaderBytesArb,
    chunkPlan(),
    fc.nat(),
  ),
  check: ([spec, edits, maxHeaderBytes, plan, guardSeed]) => {
    const bytes = applyMutations(
      concat(latin1Bytes(serializeResponse(spec)), spec.trailing),
      edits,
    );
    const options = maxHeaderBytes === null ? {} : { maxHeaderBytes };
    const limit = maxHeaderBytes ?? 8192;
    const { view, parser, fed } = feedHeads(
      bytes,
      plan,
      guardSeed,
      () => new HttpResponseParser(options),
      responseOutcome,
    );
    const what = () =>
      `input ${JSON.stringify(String.fromCharCode(...bytes))}: ${JSON.stringify(view)}`;
    if (view.kind === "error") {
      expect(view.message.length > 0, what);
      if (view.tooLarge) expect(bytes.length >= limit, what);
      const again = parser.push(bytes, 0, bytes.length);
      expect(again === fed.result, () => `error not sticky: ${JSON.stringify(again)}; ${what()}`);
      // Until reset: then the unmutated head parses.
      parser.reset();
      const valid = latin1Bytes(serializeResponse(spec));
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
    expect(split.leading === 0, () => `empty line before the status line; ${what()}`);
    const m = /^HTTP\/1\.([0-9]) ([0-9]{3})(?: (.*))?$/s.exec(split.startLine);
    expect(m !== null, () => `status line; ${what()}`);
    const status = Number(m[2]);
    expect(status >= 100 && status <= 599 && status === view.status, () => `status; ${what()}`);
    expect(view.version === (m[1] === "0" ? "1.0" : "1.1"), () => `version; ${what()}`);
    expect(view.reason === (m[3] ?? ""), () => `reason; ${what()}`);
    expect(
      JSON.stringify(split.fields) === JSON.stringify(view.headers),
      () => `fields differ from a line-by-line reading ${JSON.stringify(split.fields)}; ${what()}`,
    );
  },
});

// ---------------------------------------------------------------------------------------------
// Upgrade responses

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/** A key as a client generates it: 22 base64 digits (the last one's low bits zero) and "==". */
const keyArb: Arbitrary<string> = fc.tuple(
  fc.array(fc.constantFrom(...B64), { minLength: 21, maxLength: 21 }),
  fc.constantFrom("A", "Q", "g", "w"),
).map(([digits, last]) => `${digits.join("")}${last}==`);

interface UpgradeResponseSpec {
  readonly key: string;
  readonly offered: string[];
  /** Index into `offered` of the chosen protocol, or null for none. */
  readonly chosen: number | null;
  readonly head: string;
}

const upgradeResponseArb: Arbitrary<UpgradeResponseSpec> = fc.record({
  key: keyArb,
  offered: fc.uniqueArray(tokenArb(8), { maxLength: 4 }),
  choose: fc.option(fc.nat(), { freq: 2 }),
  reason: fc.option(fc.constantFrom("Switching Protocols", "", "ok"), { freq: 4 }),
  upgrade: fieldArb(anyCase("upgrade"), fc.mixedCase(fc.constant("websocket"))),
  connection: fieldArb(
    anyCase("connection"),
    fc.tuple(fc.mixedCase(fc.constant("upgrade")), fc.constantFrom("", "keep-alive,", "x ,")).map((
      [u, other],
    ) => `${other} ${u}`),
  ),
  extraConnection: fc.option(fieldArb(anyCase("connection"), listValueArb), { freq: 3 }),
  acceptName: anyCase("sec-websocket-accept"),
  protocolName: anyCase("sec-websocket-protocol"),
  extra: fc.array(
    extraFieldArb([
      "upgrade",
      "connection",
      "sec-websocket-accept",
      "sec-websocket-protocol",
      "sec-websocket-extensions",
    ]),
    { maxLength: 5 },
  ),
  ows: fc.tuple(fc.constantFrom("", " ", "\t "), fc.constantFrom("", " ", " \t")),
  shuffle: fc.array(fc.nat(), { minLength: 12, maxLength: 12 }),
}).map((g) => {
  const chosen = g.choose === null || g.offered.length === 0 ? null : g.choose % g.offered.length;
  const fields: FieldSpec[] = [g.upgrade, g.connection, ...g.extra];
  if (g.extraConnection !== null) fields.push(g.extraConnection);
  fields.push({
    name: g.acceptName,
    value: referenceAccept(g.key),
    before: g.ows[0],
    after: g.ows[1],
  });
  if (chosen !== null) {
    fields.push({
      name: g.protocolName,
      value: g.offered[chosen],
      before: g.ows[1],
      after: g.ows[0],
    });
  }
  for (let i = fields.length - 1; i > 0; i--) {
    const j = g.shuffle[i % g.shuffle.length] % (i + 1);
    [fields[i], fields[j]] = [fields[j], fields[i]];
  }
  const reason = g.reason === null ? "" : ` ${g.reason}`;
  const head = `HTTP/1.1 101${reason}\r\n${fields.map(fieldLine).join("")}\r\n`;
  return { key: g.key, offered: g.offered, chosen, head };
});

function parseResponse(bytes: Uint8Array): ResponseParseResult {
  return new HttpResponseParser().push(bytes, 0, bytes.length);
}

const validUpgradeResponses = defineProperty({
  name: "upgrade-response-valid",
  description: "valid 101 answers are accepted by the client with the chosen subprotocol",
  arbitrary: fc.tuple(upgradeResponseArb, chunkPlan(), fc.nat()),
  check: ([spec, plan, guardSeed]) => {
    const bytes = latin1Bytes(spec.head);
    const { fed, view } = feedHeads(
      bytes,
      plan,
      guardSeed,
      () => new HttpResponseParser(),
      responseOutcome,
    );
    expect(fed.result?.kind === "complete", () => `not parsed: ${JSON.stringify(view)}`);
    if (fed.result?.kind !== "complete") return;
    const result = validateUpgradeResponse(fed.result.response, spec.key, spec.offered);
    const protocol = spec.chosen === null ? null : spec.offered[spec.chosen];
    expect(
      result.ok && result.protocol === protocol,
      () =>
        `${JSON.stringify(result)} for ${JSON.stringify(spec.head)} (key ${spec.key}, offered ` +
        `${JSON.stringify(spec.offered)})`,
    );
  },
});

/** RFC 6455 §4.1, restated: whether a client must accept this parsed answer. */
function acceptableResponse(
  status: number,
  headers: ReadonlyArray<readonly [string, string]>,
  key: string,
  offered: readonly string[],
): { ok: boolean; protocol: string | null } {
  const no = { ok: false, protocol: null };
  const all = (name: string) => headers.filter(([n]) => n === name).map(([, v]) => v);
  if (status !== 101) return no;
  const upgrade = all("upgrade");
  if (upgrade.length !== 1 || upgrade[0].toLowerCase() !== "websocket") return no;
  const connection = all("connection").flatMap((v) =>
    v.split(",").map((t) => stripOws(t).toLowerCase())
  );
  if (!connection.includes("upgrade")) return no;
  const accept = all("sec-websocket-accept");
  if (accept.length !== 1 || accept[0] !== referenceAccept(key)) return no;
  if (all("sec-websocket-extensions").length > 0) return no;
  const protocols = all("sec-websocket-protocol");
  if (protocols.length === 0) return { ok: true, protocol: null };
  if (protocols.length > 1 || !offered.includes(protocols[0])) return no;
  return { ok: true, protocol: protocols[0] };
}

const UPGRADE_SPECIAL = [...HTTP_SPECIAL, 0x2b, 0x3d, 0x2f, 0x41, 0x77, 0x57];

const mutatedUpgradeResponses = defineProperty({
  name: "upgrade-response-mutated",
  description:
    "mutated 101 answers never throw and are accepted exactly when RFC 6455 §4.1, restated " +
    "independently, accepts them",
  arbitrary: fc.tuple(
    upgradeResponseArb,
    fc.array(mutation(UPGRADE_SPECIAL), { minLength: 1, maxLength: 3 }),
  ),
  check: ([spec, edits]) => {
    const bytes = applyMutations(latin1Bytes(spec.head), edits);
    const parsed = parseResponse(bytes);
    if (parsed.kind !== "complete") return;
    const res = parsed.response;
    const verdict = validateUpgradeResponse(res, spec.key, spec.offered);
    const expected = acceptableResponse(res.status, res.headers, spec.key, spec.offered);
    const what = () =>
      `${JSON.stringify(verdict)} for ${JSON.stringify(String.fromCharCode(...bytes))} (key ` +
      `${spec.key}, offered ${JSON.stringify(spec.offered)})`;
    expect(
      verdict.ok === expected.ok,
      () => `expected ${expected.ok ? "accepted" : "refused"}: ${what()}`,
    );
    if (verdict.ok) expect(verdict.protocol === expected.protocol, what);
    else expect(verdict.message !== "", what);
  },
});

/** The response-side properties, in the order they run. */
export const RESPONSE_PROPERTIES: readonly FuzzProperty[] = [
  validResponses,
  mutatedResponses,
  validUpgradeResponses,
  mutatedUpgradeResponses,
];
