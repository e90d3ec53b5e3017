/**
 * The request-head parser a server's connections share while their heads arrive whole.
 *
 * @module
 */

import { HttpRequestParser } from "../protocol/http/request.ts";

/**
 * One idle {@link HttpRequestParser} for every connection of a server whose request head
 * arrives in one read (nearly all): a connection takes a parser of its own only when its
 * head is split across reads. A parser per connection was a few hundred bytes of garbage
 * per handshake, most of what a burst of connections left to collect.
 *
 * @example
 * ```ts
 * import { RequestParsers } from "./request_parsers.ts";
 *
 * const parsers = new RequestParsers(8192);
 * const head = new TextEncoder().encode("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
 * console.log(parsers.shared.push(head, 0, head.length).kind); // "complete"
 * const split = parsers.take(); // a connection keeps this one for the rest of its head
 * console.log(split === parsers.shared); // false
 * ```
 */
export class RequestParsers {
  readonly #maxHeaderBytes: number;
  #shared: HttpRequestParser;

  /**
   * @param maxHeaderBytes Largest request head; larger ones fail with 431.
   * @throws {HandshakeError} `INVALID_OPTION` when it is not an integer >= 16.
   */
  constructor(maxHeaderBytes: number) {
    this.#maxHeaderBytes = maxHeaderBytes;
    this.#shared = new HttpRequestParser({ maxHeaderBytes });
  }

  /**
   * The shared parser, between heads. Whoever pushes a head into it either gets it whole
   * (complete: the parser is ready for the next one) or calls {@link RequestParsers.take}
   * (incomplete) or {@link RequestParsers.recover} (error) before anything else parses.
   */
  get shared(): HttpRequestParser {
    return this.#shared;
  }

  /** Hands the shared parser, holding part of a head, to its connection; a new one is shared. */
  take(): HttpRequestParser {
    const kept = this.#shared;
    this.#shared = new HttpRequestParser({ maxHeaderBytes: this.#maxHeaderBytes });
    return kept;
  }

  /** The shared parser failed on a head: clears its sticky error for the next one. */
  recover(): void {
    this.#shared.reset();
  }
}
