/**
 * Shared pieces of the HTTP head fuzz properties: generators of header fields (any case, any
 * optional whitespace, repeated names, list values), of Host values and request targets; the
 * feeding of one input whole, byte by byte and in a generated chunking (each chunk between
 * guard bytes, tests/fixtures/chunking.ts); and a reference splitter that re-reads a head
 * the parser accepted, line by line with string operations, to check what it returned.
 *
 * @module
 */

import { type Arbitrary, fc } from "./fast_check.ts";
import {
  type Fed,
  feedGuarded,
  type HeadOutcome,
  headOutcome,
  type HeadResult,
  type PushParser,
} from "../fixtures/chunking.ts";
import { type ChunkPlan, planSizes } from "./mutate.ts";
import { expect } from "./property.ts";

/** RFC 9110 tchar. */
export const TOKEN_CHARS =
  "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/** A token of 1 to `max` characters. */
export function tokenArb(max = 12): Arbitrary<string> {
  return fc.string({ unit: fc.constantFrom(...TOKEN_CHARS), minLength: 1, maxLength: max });
}

/** Optional whitespace as peers send it. */
export const owsArb: Arbitrary<string> = fc.constantFrom("", "", "", " ", "\t", "  ", " \t ");

/** A field value: visible ASCII, obs-text, inner spaces and tabs (edges are OWS, trimmed). */
export const fieldValueArb: Arbitrary<string> = fc.array(
  fc.oneof(
    { weight: 8, arbitrary: fc.integer({ min: 0x21, max: 0x7e }) },
    { weight: 1, arbitrary: fc.integer({ min: 0x80, max: 0xff }) },
    { weight: 2, arbitrary: fc.constantFrom(0x20, 0x09) },
  ),
  { maxLength: 30 },
).map((codes) => String.fromCharCode(...codes));

/** A comma-separated list value with uneven spacing and empty elements. */
export const listValueArb: Arbitrary<string> = fc.array(
  fc.tuple(owsArb, fc.oneof(tokenArb(8), fc.constant("")), owsArb),
  { minLength: 1, maxLength: 4 },
).map((parts) => parts.map(([a, t, b]) => a + t + b).join(","));

/** One header line as sent: the name's case and the whitespace around the value are free. */
export interface FieldSpec {
  readonly name: string;
  readonly value: string;
  readonly before: string;
  readonly after: string;
}

/** `name` in a random mix of upper and lower case. */
export function anyCase(name: string): Arbitrary<string> {
  return fc.mixedCase(fc.constant(name));
}

/** A field with the given name arbitrary. */
export function fieldArb(
  name: Arbitrary<string>,
  value: Arbitrary<string> = fieldValueArb,
): Arbitrary<FieldSpec> {
  return fc.record({ name, value, before: owsArb, after: owsArb });
}

/** Names repeated often enough to produce repeated fields, and random tokens. */
export function extraFieldArb(exclude: readonly string[]): Arbitrary<FieldSpec> {
  const pool = ["x-a", "Accept", "Cookie", "X-Forwarded-For", "user-agent", "cache-control"];
  return fieldArb(
    fc.oneof(fc.constantFrom(...pool).chain(anyCase), tokenArb()).filter((n) =>
      !exclude.includes(n.toLowerCase())
    ),
    fc.oneof(fieldValueArb, listValueArb),
  );
}

/** The line of a field, CRLF included. */
export function fieldLine(f: FieldSpec): string {
  return `${f.name}:${f.before}${f.value}${f.after}\r\n`;
}

/** Removes spaces and tabs at both ends (RFC 9110 OWS), restated for the oracles. */
export function stripOws(s: string): string {
  return s.replace(/^[ \t]+/, "").replace(/[ \t]+$/, "");
}

/** The field as a parser must report it: lowercase name, value without edge whitespace. */
export function parsedField(f: FieldSpec): [string, string] {
  return [f.name.toLowerCase(), stripOws(f.before + f.value + f.after)];
}

const UNRESERVED = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~";
const SUB_DELIMS = "!$&'()*+,;=";

/** A valid Host value: reg-name (with %XX), IPv4, bracketed IPv6, empty; optional port. */
export const hostArb: Arbitrary<string> = fc.tuple(
  fc.oneof(
    { weight: 4, arbitrary: fc.domain() },
    {
      weight: 2,
      arbitrary: fc.string({
        unit: fc.oneof(
          fc.constantFrom(...UNRESERVED, ...SUB_DELIMS),
          fc.constantFrom("%20", "%7E", "%c3"),
        ),
        minLength: 1,
        maxLength: 12,
      }),
    },
    { weight: 1, arbitrary: fc.ipV4() },
    { weight: 1, arbitrary: fc.ipV6().map((ip) => `[${ip}]`) },
  ),
  fc.option(fc.oneof(fc.nat(65535).map(String), fc.constant("")), { freq: 2 }),
).map(([host, port]) => (port === null ? host : `${host}:${port}`));

/** Visible ASCII but `#` (a fragment is refused), for targets. */
const TARGET_CHARS = Array.from(
  { length: 0x7e - 0x21 + 1 },
  (_, i) => String.fromCharCode(0x21 + i),
)
  .filter((c) => c !== "#");

/** A method and a target of a form that method may use (RFC 9112 §3.2). */
export const requestLineArb: Arbitrary<{ method: string; target: string }> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      method: fc.oneof(fc.constantFrom("GET", "POST", "PUT", "DELETE", "OPTIONS"), tokenArb(8))
        .filter((m) => m !== "CONNECT"),
      target: fc.string({ unit: fc.constantFrom(...TARGET_CHARS), maxLength: 30 }).map((p) =>
        `/${p}`
      ),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      method: fc.constantFrom("GET", "POST"),
      target: fc.tuple(
        fc.stringMatching(/^[a-zA-Z][a-zA-Z0-9+.-]{0,6}$/),
        fc.string({ unit: fc.constantFrom(...TARGET_CHARS), maxLength: 20 }),
      ).map(([scheme, rest]) => `${scheme}:${rest}`),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ method: "OPTIONS", target: "*" }) },
  {
    weight: 1,
    arbitrary: fc.tuple(fc.domain(), fc.nat(65535)).map(([h, p]) => ({
      method: "CONNECT",
      target: `${h}:${p}`,
    })),
  },
);

/** Bytes of a string whose code units are all below 0x100. */
export function latin1Bytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** A string with one code unit per byte. */
export function latin1String(bytes: Uint8Array, from = 0, to = bytes.length): string {
  let s = "";
  for (let i = from; i < to; i++) s += String.fromCharCode(bytes[i]);
  return s;
}

/** The same outcome from every feed of one input, with the parser of the whole feed. */
export interface HeadFeeds<R extends HeadResult, V, P extends PushParser<R>> {
  readonly view: V;
  readonly fed: Fed<R>;
  readonly parser: P;
}

/**
 * Feeds `bytes` whole, byte by byte (up to 2 KiB) and in the chunks of `plan`, each chunk in
 * a fresh buffer between guard bytes drawn from `guardSeed`; every feed must give the same
 * `view`.
 */
export function feedHeads<R extends HeadResult, V, P extends PushParser<R>>(
  bytes: Uint8Array,
  plan: ChunkPlan,
  guardSeed: number,
  newParser: () => P,
  view: (fed: Fed<R>) => V,
): HeadFeeds<R, V, P> {
  const parser = newParser();
  const fed = feedGuarded(parser, bytes, bytes.length === 0 ? [] : [bytes.length], guardSeed);
  const first = view(fed);
  const expected = JSON.stringify(first);
  const others: Array<[string, number[]]> = [["planned", planSizes(plan, bytes.length)]];
  if (bytes.length <= 2048) others.push(["bytewise", new Array(bytes.length).fill(1)]);
  for (const [how, sizes] of others) {
    const got = JSON.stringify(view(feedGuarded(newParser(), bytes, sizes, guardSeed)));
    expect(
      got === expected,
      () =>
        `fed ${how}, the outcome differs\n  got   ${got}\n  whole ${expected}\n` +
        `  input ${JSON.stringify(latin1String(bytes))}`,
    );
  }
  return { view: first, fed, parser };
}

export { headOutcome };
export type { Fed, HeadOutcome };

/** A head split into its lines by the reference splitter. */
export interface SplitHead {
  /** Empty lines before the start line. */
  readonly leading: number;
  readonly startLine: string;
  readonly fields: Array<[string, string]>;
}

/**
 * Re-reads `bytes[0, end)`, a head the parser accepted, with string operations: it must be
 * CRLF-terminated lines (no bare CR or LF, no control character but HTAB), optional empty
 * lines, a start line, `name: value` lines with token names, and one empty line at the end.
 */
export function splitHead(bytes: Uint8Array, end: number): SplitHead {
  const text = latin1String(bytes, 0, end);
  expect(
    /^[\t\r\n\x20-\x7e\x80-\xff]*$/.test(text),
    () => `control character in accepted head ${JSON.stringify(text)}`,
  );
  expect(
    text.endsWith("\r\n\r\n") || text === "\r\n",
    () => `accepted head does not end with an empty line: ${JSON.stringify(text)}`,
  );
  expect(
    !/\r(?!\n)|(?<!\r)\n/.test(text),
    () => `bare CR or LF in accepted head ${JSON.stringify(text)}`,
  );
  const lines = text.split("\r\n").slice(0, -2);
  let leading = 0;
  while (lines[leading] === "") leading++;
  const startLine = lines[leading];
  const fields: Array<[string, string]> = [];
  for (const line of lines.slice(leading + 1)) {
    expect(line !== "", () => `an empty line inside accepted head ${JSON.stringify(text)}`);
    const colon = line.indexOf(":");
    expect(colon > 0, () => `field line without a name: ${JSON.stringify(line)}`);
    const name = line.slice(0, colon);
    expect(
      [...name].every((c) => TOKEN_CHARS.includes(c)),
      () => `field name is not a token: ${JSON.stringify(line)}`,
    );
    fields.push([name.toLowerCase(), stripOws(line.slice(colon + 1))]);
  }
  return { leading, startLine, fields };
}

/** `maxHeaderBytes`: null for the default, else from the smallest allowed (16) up. */
export const maxHeaderBytesArb: Arbitrary<number | null> = fc.option(
  fc.oneof(fc.integer({ min: 16, max: 40 }), fc.noBias(fc.integer({ min: 16, max: 600 }))),
  { freq: 3 },
);
