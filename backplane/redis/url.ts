/**
 * Redis connection URLs: `redis://[[username]:password@]host[:port][/db]`.
 *
 * @module
 */

import { RedisBackplaneError } from "./errors.ts";

/**
 * Where and how to connect, as read from a URL.
 *
 * @example
 * ```ts
 * import { parseRedisUrl, type RedisEndpoint } from "./url.ts";
 * const e: RedisEndpoint = parseRedisUrl("redis://:s3cret@10.0.0.5:6380/2");
 * console.log(e.host, e.port, e.password, e.db); // "10.0.0.5" 6380 "s3cret" 2
 * ```
 */
export interface RedisEndpoint {
  /** Host name or IP literal (IPv6 without brackets). */
  host: string;
  /** Port (default 6379). */
  port: number;
  /** ACL user name, or null (AUTH with the password alone). */
  username: string | null;
  /** Password, or null (no AUTH). */
  password: string | null;
  /** Database number selected after connecting (default 0). */
  db: number;
}

/**
 * Reads a `redis://` URL. Refuses `rediss://` (TLS is not implemented: put the backplane
 * on a private network or a TLS tunnel such as stunnel or spiped) and anything else that
 * is not a Redis URL.
 *
 * @throws {RedisBackplaneError} `"INVALID_URL"` or `"TLS_UNSUPPORTED"`.
 *
 * @example
 * ```ts
 * import { parseRedisUrl } from "./url.ts";
 * console.log(parseRedisUrl("redis://[::1]").host); // "::1"
 * console.log(parseRedisUrl("redis://app:pw@localhost:7000").username); // "app"
 * ```
 */
export function parseRedisUrl(url: string): RedisEndpoint {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new RedisBackplaneError("INVALID_URL", `not a URL: ${JSON.stringify(url)}`);
  }
  if (u.protocol === "rediss:") {
    throw new RedisBackplaneError(
      "TLS_UNSUPPORTED",
      "rediss:// (TLS to Redis) is not supported by this backplane; use redis:// on a private " +
        "network or through a TLS tunnel",
    );
  }
  if (u.protocol !== "redis:") {
    throw new RedisBackplaneError("INVALID_URL", `expected redis://, got ${u.protocol}//`);
  }
  let host = u.hostname;
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  if (host === "") throw new RedisBackplaneError("INVALID_URL", "the URL names no host");
  const port = u.port === "" ? 6379 : Number(u.port);
  const path = u.pathname.replace(/^\/+/, "");
  if (path !== "" && !/^[0-9]+$/.test(path)) {
    throw new RedisBackplaneError(
      "INVALID_URL",
      `the path must be a database number, got /${path}`,
    );
  }
  const db = path === "" ? 0 : Number(path);
  const decode = (s: string): string => {
    try {
      return decodeURIComponent(s);
    } catch {
      throw new RedisBackplaneError("INVALID_URL", "malformed percent-encoding in the URL");
    }
  };
  const username = u.username === "" ? null : decode(u.username);
  const password = u.password === "" ? null : decode(u.password);
  if (username !== null && password === null) {
    throw new RedisBackplaneError("INVALID_URL", "a user name needs a password");
  }
  return { host, port, username, password, db };
}
