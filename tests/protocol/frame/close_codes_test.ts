// Close status code rules, checked exhaustively against a table written out independently.
import assert from "node:assert/strict";
import {
  assertSendableCloseCode,
  CloseCode,
  CloseCodeError,
  isSendableCloseCode,
  isValidReceivedCloseCode,
  MAX_CLOSE_REASON_BYTES,
} from "../../../protocol/frame/close_codes.ts";
import { FdwsError } from "../../../errors.ts";
import { onWire } from "../../fixtures/close_codes.ts";

/** Asserts that `predicate` agrees with the wire table on every code 0..5100. */
function assertWireTable(predicate: (code: number) => boolean): void {
  for (let code = 0; code <= 5100; code++) {
    assert.equal(predicate(code), onWire(code), `${code}`);
  }
}

Deno.test("close codes: named constants", () => {
  assert.deepStrictEqual({ ...CloseCode }, {
    NORMAL: 1000,
    GOING_AWAY: 1001,
    PROTOCOL_ERROR: 1002,
    UNSUPPORTED_DATA: 1003,
    NO_STATUS: 1005,
    ABNORMAL: 1006,
    INVALID_PAYLOAD: 1007,
    POLICY_VIOLATION: 1008,
    MESSAGE_TOO_BIG: 1009,
    MANDATORY_EXTENSION: 1010,
    INTERNAL_ERROR: 1011,
    SERVICE_RESTART: 1012,
    TRY_AGAIN_LATER: 1013,
    BAD_GATEWAY: 1014,
    TLS_HANDSHAKE: 1015,
  });
  assert.equal(MAX_CLOSE_REASON_BYTES, 123);
});

Deno.test("close codes: isValidReceivedCloseCode over 0..5100", async (t) => {
  await t.step("exhaustive table", () => assertWireTable(isValidReceivedCloseCode));
  await t.step("boundaries named in the RFC", () => {
    const invalid = [0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1999, 2000, 2999, 5000, 5001, 65535];
    for (const code of invalid) assert.equal(isValidReceivedCloseCode(code), false, `${code}`);
    const valid = [
      1000,
      1001,
      1002,
      1003,
      1007,
      1008,
      1009,
      1010,
      1011,
      1012,
      1013,
      1014,
      3000,
      4999,
    ];
    for (const code of valid) assert.equal(isValidReceivedCloseCode(code), true, `${code}`);
  });
  await t.step("every named constant: only the local-only ones are invalid on the wire", () => {
    for (const [name, code] of Object.entries(CloseCode)) {
      const localOnly = name === "NO_STATUS" || name === "ABNORMAL" || name === "TLS_HANDSHAKE";
      assert.equal(isValidReceivedCloseCode(code), !localOnly, name);
    }
  });
  await t.step("non-integers and out-of-range numbers", () => {
    for (const code of [-1, -1000, 1000.5, 3000.1, NaN, Infinity, -Infinity, 2 ** 32 + 1000]) {
      assert.equal(isValidReceivedCloseCode(code), false, `${code}`);
    }
  });
});

Deno.test("close codes: sendable codes over 0..5100", async (t) => {
  await t.step("isSendableCloseCode matches the wire table", () => {
    assertWireTable(isSendableCloseCode);
    assert.equal(isSendableCloseCode(1000.5), false);
  });
  await t.step("assertSendableCloseCode throws a typed INVALID_CLOSE_CODE error", () => {
    for (let code = 0; code <= 5100; code++) {
      if (onWire(code)) {
        assertSendableCloseCode(code);
        continue;
      }
      assert.throws(
        () => assertSendableCloseCode(code),
        (err: unknown) =>
          err instanceof CloseCodeError && err instanceof FdwsError &&
          err.code === "INVALID_CLOSE_CODE" && err.name === "CloseCodeError" &&
          err.message.includes(String(code)),
        `${code}`,
      );
    }
    for (const code of [NaN, -1, 1000.5, 65535]) {
      assert.throws(() => assertSendableCloseCode(code), CloseCodeError);
    }
  });
});
