/**
 * Byte-stream mutations for the fuzz properties: bit flips, byte overwrites, insertions,
 * deletions, duplicated and swapped runs, truncations and random tails, applied to a valid
 * input so that the broken stream still reaches deep parser states.
 *
 * @module
 */

import { type Arbitrary, fc } from "./fast_check.ts";

/** One edit of a byte stream; positions are taken modulo the length at the time of the edit. */
export type Mutation =
  | { readonly op: "flip"; readonly at: number; readonly bit: number }
  | { readonly op: "set"; readonly at: number; readonly value: number }
  | { readonly op: "insert"; readonly at: number; readonly bytes: Uint8Array }
  | { readonly op: "delete"; readonly at: number; readonly count: number }
  | { readonly op: "duplicate"; readonly at: number; readonly count: number }
  | { readonly op: "swap"; readonly at: number; readonly other: number }
  | { readonly op: "truncate"; readonly at: number }
  | { readonly op: "append"; readonly bytes: Uint8Array };

/** Bytes a mutation inserts: random ones and those that are special to the parsers. */
export function interestingBytes(special: readonly number[]): Arbitrary<Uint8Array> {
  return fc.oneof(
    fc.uint8Array({ minLength: 1, maxLength: 8 }),
    fc.array(fc.constantFrom(...special), { minLength: 1, maxLength: 4 }).map((a) =>
      Uint8Array.from(a)
    ),
  );
}

/** Arbitrary edits; `special` are byte values worth inserting or writing (delimiters, limits). */
export function mutation(special: readonly number[]): Arbitrary<Mutation> {
  const at = fc.nat();
  const inserted = interestingBytes(special);
  return fc.oneof(
    { weight: 4, arbitrary: fc.record({ op: fc.constant("flip" as const), at, bit: fc.nat(7) }) },
    {
      weight: 3,
      arbitrary: fc.record({
        op: fc.constant("set" as const),
        at,
        value: fc.oneof(fc.integer({ min: 0, max: 255 }), fc.constantFrom(...special)),
      }),
    },
    {
      weight: 2,
      arbitrary: fc.record({ op: fc.constant("insert" as const), at, bytes: inserted }),
    },
    {
      weight: 2,
      arbitrary: fc.record({
        op: fc.constant("delete" as const),
        at,
        count: fc.integer({ min: 1, max: 8 }),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        op: fc.constant("duplicate" as const),
        at,
        count: fc.integer({ min: 1, max: 16 }),
      }),
    },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("swap" as const), at, other: fc.nat() }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("truncate" as const), at }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("append" as const), bytes: inserted }) },
  );
}

/** `bytes` after the edits, in order, in a new buffer (the input is not modified). */
export function applyMutations(bytes: Uint8Array, edits: readonly Mutation[]): Uint8Array {
  let b: Uint8Array = bytes.slice();
  for (const m of edits) {
    const n = b.length;
    switch (m.op) {
      case "flip":
        if (n > 0) b[m.at % n] ^= 1 << m.bit;
        break;
      case "set":
        if (n > 0) b[m.at % n] = m.value;
        break;
      case "insert": {
        const i = m.at % (n + 1);
        b = join(b.subarray(0, i), m.bytes, b.subarray(i));
        break;
      }
      case "delete": {
        if (n === 0) break;
        const i = m.at % n;
        b = join(b.subarray(0, i), b.subarray(Math.min(n, i + m.count)));
        break;
      }
      case "duplicate": {
        if (n === 0) break;
        const i = m.at % n;
        const run = b.subarray(i, Math.min(n, i + m.count));
        b = join(b.subarray(0, i), run, b.subarray(i));
        break;
      }
      case "swap":
        if (n > 0) {
          const i = m.at % n;
          const j = m.other % n;
          const t = b[i];
          b[i] = b[j];
          b[j] = t;
        }
        break;
      case "truncate":
        b = b.slice(0, m.at % (n + 1));
        break;
      case "append":
        b = join(b, m.bytes);
        break;
    }
  }
  return b;
}

function join(...parts: Uint8Array[]): Uint8Array {
  let total = 0;
  for (const p of parts) total += p.length;
  const out = new Uint8Array(total);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** How a byte stream is cut into reads: a cycle of chunk sizes and where each chunk sits. */
export interface ChunkPlan {
  /** Chunk sizes, used in turn and repeated until the input is exhausted. */
  readonly sizes: readonly number[];
  /** Per chunk, in turn: -1 pushes it in place, n >= 0 copies it to offset n of a fresh buffer. */
  readonly offsets: readonly number[];
}

/** Small chunks (a header split anywhere) with the odd large one. */
export function chunkPlan(largest = 64): Arbitrary<ChunkPlan> {
  return fc.record({
    sizes: fc.array(
      fc.oneof(
        { weight: 3, arbitrary: fc.integer({ min: 1, max: 4 }) },
        { weight: 2, arbitrary: fc.integer({ min: 1, max: largest }) },
      ),
      { minLength: 1, maxLength: 6 },
    ),
    offsets: fc.array(fc.integer({ min: -1, max: 7 }), { minLength: 1, maxLength: 4 }),
  });
}

/** The chunk sizes a plan gives for `length` bytes. */
export function planSizes(plan: ChunkPlan, length: number): number[] {
  const sizes: number[] = [];
  for (let left = length, i = 0; left > 0; i++) {
    const n = Math.min(left, plan.sizes[i % plan.sizes.length]);
    sizes.push(n);
    left -= n;
  }
  return sizes;
}
