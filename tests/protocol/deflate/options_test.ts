/** permessage-deflate options: defaults per mode and validation. */

import assert from "node:assert/strict";
import {
  DEDICATED_MEM_LEVEL,
  DEDICATED_WINDOW_BITS,
  DEFAULT_THRESHOLD,
  type DeflateClientOptions,
  type DeflateServerOptions,
  resolveClientOptions,
  resolveServerOptions,
} from "../../../protocol/deflate/options.ts";
import { FdwsError } from "../../../errors.ts";

function isInvalid(e: unknown): boolean {
  return e instanceof FdwsError && e.code === "INVALID_OPTIONS";
}

Deno.test("server options: defaults per mode", () => {
  assert.deepEqual(resolveServerOptions(), {
    compress: "shared",
    decompress: "shared",
    serverMaxWindowBits: 15,
    clientMaxWindowBits: 15,
    memLevel: 8,
    level: -1,
    threshold: DEFAULT_THRESHOLD,
  });
  assert.deepEqual(resolveServerOptions({ mode: "dedicated" }), {
    compress: "dedicated",
    decompress: "dedicated",
    serverMaxWindowBits: DEDICATED_WINDOW_BITS,
    clientMaxWindowBits: DEDICATED_WINDOW_BITS,
    memLevel: DEDICATED_MEM_LEVEL,
    level: -1,
    threshold: DEFAULT_THRESHOLD,
  });
  const mixed = resolveServerOptions({ mode: "dedicated", decompress: "shared", threshold: 0 });
  assert.equal(mixed.compress, "dedicated");
  assert.equal(mixed.decompress, "shared");
  assert.equal(mixed.clientMaxWindowBits, 15);
  assert.equal(mixed.threshold, 0);
});

Deno.test("server options: invalid values", () => {
  const bad: DeflateServerOptions[] = [
    { mode: "none" as "shared" },
    { compress: "both" as "shared" },
    { serverMaxWindowBits: 7 },
    { serverMaxWindowBits: 16 },
    { clientMaxWindowBits: 8.5 },
    { memLevel: 0 },
    { memLevel: 10 },
    { level: 10 },
    { level: -2 },
    { threshold: -1 },
    { threshold: 1.5 },
    { threshold: Infinity },
  ];
  for (const options of bad) {
    assert.throws(() => resolveServerOptions(options), isInvalid, JSON.stringify(options));
  }
});

Deno.test("client options: defaults and invalid values", () => {
  assert.deepEqual(resolveClientOptions(), {
    serverNoContextTakeover: false,
    clientNoContextTakeover: false,
    serverMaxWindowBits: null,
    clientMaxWindowBits: true,
    memLevel: 8,
    level: -1,
    threshold: DEFAULT_THRESHOLD,
  });
  assert.equal(resolveClientOptions({ clientMaxWindowBits: false }).clientMaxWindowBits, null);
  assert.equal(resolveClientOptions({ clientMaxWindowBits: 9 }).clientMaxWindowBits, 9);
  const bad: DeflateClientOptions[] = [
    { serverMaxWindowBits: 16 },
    { clientMaxWindowBits: 7 },
    { memLevel: 0 },
    { level: 11 },
    { threshold: -5 },
  ];
  for (const options of bad) {
    assert.throws(() => resolveClientOptions(options), isInvalid, JSON.stringify(options));
  }
});
