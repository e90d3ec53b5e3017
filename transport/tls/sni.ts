/**
 * SNI on the server: one `SSL_CTX` per certificate, chosen by the name the client sends.
 * OpenSSL calls the servername callback synchronously inside `SSL_do_handshake` (on this
 * thread); it looks the name up in the session's generation and moves the session to the
 * matching context with `SSL_set_SSL_CTX`. A name nobody configured keeps the default
 * certificate (as browsers expect of a default virtual host).
 *
 * A generation is the set of contexts one configuration built. A reload retires it: new
 * connections use the next one, and the retired one's contexts are released once no
 * handshake that started on it is in flight (its callback could still switch to any of
 * them). Established sessions hold their own reference on their `SSL_CTX`, so OpenSSL frees
 * each context when its last session is gone.
 *
 * @module
 */

import {
  cString,
  openSsl,
  SSL_CTRL_SET_TLSEXT_SERVERNAME_ARG,
  SSL_CTRL_SET_TLSEXT_SERVERNAME_CB,
  SSL_TLSEXT_ERR_OK,
  TLSEXT_NAMETYPE_host_name,
} from "../../ffi/openssl.ts";
import type { TlsGeneration } from "./context.ts";

/**
 * Whether a configured name (`example.com` or `*.example.com`) covers a requested one.
 * A wildcard stands for exactly one leftmost label, as in certificates (RFC 6125 §6.4.3).
 *
 * @param pattern A configured name, lower case.
 * @param name The requested name, lower case.
 * @returns True on a match.
 *
 * @example
 * ```ts
 * import { serverNameMatches } from "./sni.ts";
 * console.log(serverNameMatches("*.example.com", "a.example.com")); // true
 * console.log(serverNameMatches("*.example.com", "a.b.example.com")); // false
 * ```
 */
export function serverNameMatches(pattern: string, name: string): boolean {
  if (!pattern.startsWith("*.")) return pattern === name;
  const suffix = pattern.slice(1);
  if (!name.endsWith(suffix)) return false;
  const label = name.slice(0, name.length - suffix.length);
  return label.length > 0 && !label.includes(".");
}

/** Generations that may still see a servername callback, by id. */
const live = new Map<number, ServerGeneration>();
let nextId = 1;

let servernameCallback:
  | Deno.UnsafeCallback<{
    readonly parameters: readonly ["pointer", "pointer", "pointer"];
    readonly result: "i32";
  }>
  | null = null;

/** `int cb(SSL *s, int *alert, void *arg)`, created once per isolate; `arg` is a generation id. */
function servernameCallbackPointer(): Deno.PointerObject {
  if (servernameCallback === null) {
    const { ssl } = openSsl();
    servernameCallback = new Deno.UnsafeCallback(
      { parameters: ["pointer", "pointer", "pointer"], result: "i32" } as const,
      (s, _alert, arg) => {
        try {
          const gen = live.get(Number(Deno.UnsafePointer.value(arg)));
          if (gen === undefined || s === null) return SSL_TLSEXT_ERR_OK;
          const name = cString(ssl.SSL_get_servername(s, TLSEXT_NAMETYPE_host_name));
          const ctx = gen.contextFor(name);
          if (ctx !== gen.ctx) ssl.SSL_set_SSL_CTX(s, ctx);
        } catch {
          // A throw must not cross into OpenSSL: keep the default certificate.
        }
        return SSL_TLSEXT_ERR_OK;
      },
    );
  }
  return servernameCallback.pointer;
}

/**
 * The contexts of one server configuration: a default one and one per SNI name.
 *
 * @example
 * ```ts
 * import { ServerGeneration } from "./sni.ts";
 * import { newNativeContext } from "./native.ts";
 *
 * const main = newNativeContext({ role: "server", ktls: false });
 * const other = newNativeContext({ role: "server", ktls: false });
 * const gen = new ServerGeneration(main, [["*.example.com", other]]);
 * console.log(gen.contextFor("a.example.com") === other); // true
 * gen.retire(); // frees both: no handshake of this generation is in flight
 * ```
 */
export class ServerGeneration implements TlsGeneration {
  /** The default `SSL_CTX*` (also the one sessions are created from). */
  readonly ctx: Deno.PointerObject;
  readonly #exact = new Map<string, Deno.PointerObject>();
  readonly #wildcards: [string, Deno.PointerObject][] = [];
  readonly #owned: Deno.PointerObject[];
  readonly #id: number;
  #inFlight = 0;
  #retired = false;
  #freed = false;

  /**
   * Takes ownership of the contexts (each freed once, when the generation is released).
   *
   * @param ctx The default context.
   * @param named Context per configured name (`example.com`, `*.example.com`).
   */
  constructor(ctx: Deno.PointerObject, named: readonly [string, Deno.PointerObject][]) {
    this.ctx = ctx;
    this.#owned = [ctx];
    for (const [pattern, c] of named) {
      const p = pattern.toLowerCase();
      if (p.startsWith("*.")) this.#wildcards.push([p, c]);
      else this.#exact.set(p, c);
      if (!this.#owned.includes(c)) this.#owned.push(c);
    }
    this.#id = nextId++;
    if (named.length > 0) {
      const { ssl } = openSsl();
      live.set(this.#id, this);
      ssl.SSL_CTX_callback_ctrl(
        ctx,
        SSL_CTRL_SET_TLSEXT_SERVERNAME_CB,
        servernameCallbackPointer(),
      );
      const arg = Deno.UnsafePointer.create(BigInt(this.#id));
      ssl.SSL_CTX_ctrl(ctx, SSL_CTRL_SET_TLSEXT_SERVERNAME_ARG, 0n, arg);
    }
  }

  /** Number of configured SNI names. */
  get names(): number {
    return this.#exact.size + this.#wildcards.length;
  }

  /**
   * The context for a requested server name: an exact name first, then a wildcard, else
   * the default.
   *
   * @param name The name the client sent ("" when none).
   * @returns The `SSL_CTX*` to use.
   */
  contextFor(name: string): Deno.PointerObject {
    if (name === "") return this.ctx;
    const n = name.toLowerCase().replace(/\.$/, "");
    const exact = this.#exact.get(n);
    if (exact !== undefined) return exact;
    for (const [pattern, c] of this.#wildcards) if (serverNameMatches(pattern, n)) return c;
    return this.ctx;
  }

  /** A handshake of this generation started. */
  enter(): void {
    this.#inFlight++;
  }

  /** A handshake of this generation ended. */
  leave(): void {
    this.#inFlight--;
    if (this.#retired && this.#inFlight <= 0) this.#free();
  }

  /** New sessions no longer come from this generation: release it when idle. */
  retire(): void {
    this.#retired = true;
    if (this.#inFlight <= 0) this.#free();
  }

  /** True once its contexts were released. */
  get released(): boolean {
    return this.#freed;
  }

  #free(): void {
    if (this.#freed) return;
    this.#freed = true;
    live.delete(this.#id);
    const { ssl } = openSsl();
    for (const c of this.#owned) ssl.SSL_CTX_free(c);
  }
}
