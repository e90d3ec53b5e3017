// Redis URLs: every part, defaults, percent-encoding, rediss:// and malformed URLs refused.
import assert from "node:assert/strict";
import { RedisBackplaneError } from "../../../backplane/redis/errors.ts";
import { parseRedisUrl } from "../../../backplane/redis/url.ts";

Deno.test("redis url", async (t) => {
  await t.step("parts and defaults", () => {
    assert.deepEqual(parseRedisUrl("redis://127.0.0.1"), {
      host: "127.0.0.1",
      port: 6379,
      username: null,
      password: null,
      db: 0,
    });
    assert.deepEqual(parseRedisUrl("redis://:p%40ss%3A@h:6380/15"), {
      host: "h",
      port: 6380,
      username: null,
      password: "p@ss:",
      db: 15,
    });
    assert.deepEqual(parseRedisUrl("redis://app:pw@[::1]:7000/"), {
      host: "::1",
      port: 7000,
      username: "app",
      password: "pw",
      db: 0,
    });
  });

  await t.step("rediss:// is refused with TLS_UNSUPPORTED", () => {
    assert.throws(
      () => parseRedisUrl("rediss://:pw@cache:6380"),
      (e: unknown) =>
        e instanceof RedisBackplaneError && e.code === "TLS_UNSUPPORTED" && /TLS/.test(e.message),
    );
  });

  await t.step("malformed URLs are refused with INVALID_URL", () => {
    for (
      const url of ["", "127.0.0.1:6379", "http://h", "redis://h/x", "redis://u@h", "redis://"]
    ) {
      assert.throws(
        () => parseRedisUrl(url),
        (e: unknown) => e instanceof RedisBackplaneError && e.code === "INVALID_URL",
        url,
      );
    }
  });
});
