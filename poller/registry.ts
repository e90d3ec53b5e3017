/**
 * Per-descriptor bookkeeping shared by the pollers: the token and interest of each
 * registered descriptor and a generation number that changes at every registration.
 *
 * The kernel is given (fd, generation) as its opaque user data. An event whose generation
 * no longer matches belongs to a registration that ended (the descriptor was closed and
 * perhaps reused by a new connection) and is dropped, so it never reaches the new owner.
 *
 * @module
 */

import { PollerError } from "./poller.ts";

/**
 * Growable arrays indexed by descriptor number, allocated once per growth so that looking
 * up an event's registration costs no allocation.
 *
 * @example A reused descriptor number does not match the old registration
 * ```ts
 * import { Registry } from "./registry.ts";
 * const registry = new Registry();
 * const old = registry.add(5, 1, 1);
 * registry.remove(5);
 * registry.add(5, 2, 1);
 * console.log(registry.current(5, old)); // false
 * ```
 */
export class Registry {
  /** Generation of the current registration of each fd (0 = never registered). */
  gen: Uint32Array = new Uint32Array(64);
  /** Token of each registered fd. */
  token: Uint32Array = new Uint32Array(64);
  /** Interest bits of each registered fd. */
  interest: Uint8Array = new Uint8Array(64);
  /** 1 for a registered fd. */
  live: Uint8Array = new Uint8Array(64);
  /** Number of registered descriptors. */
  size = 0;
  #nextGen = 1;

  /** The generation the next registration will get; every current one is below it. */
  get nextGeneration(): number {
    return this.#nextGen;
  }

  /** Records a new registration and returns its generation. */
  add(fd: number, token: number, interest: number): number {
    if (!Number.isInteger(fd) || fd < 0) {
      throw new PollerError("INVALID_ARGUMENT", `invalid descriptor ${fd}`);
    }
    checkToken(token);
    this.#grow(fd);
    if (this.live[fd]) {
      throw new PollerError("ALREADY_REGISTERED", `descriptor ${fd} is already registered`);
    }
    const g = this.#nextGen;
    // Generation 0 marks "never registered"; skip it when the counter wraps.
    this.#nextGen = g === 0xffffffff ? 1 : g + 1;
    this.gen[fd] = g;
    this.token[fd] = token;
    this.interest[fd] = interest;
    this.live[fd] = 1;
    this.size++;
    return g;
  }

  /** Updates a registration; throws when fd is not registered. */
  update(fd: number, token: number, interest: number): number {
    if (!this.has(fd)) {
      throw new PollerError("NOT_REGISTERED", `descriptor ${fd} is not registered`);
    }
    checkToken(token);
    this.token[fd] = token;
    this.interest[fd] = interest;
    return this.gen[fd];
  }

  /** Ends a registration; returns false when fd was not registered. */
  remove(fd: number): boolean {
    if (!this.has(fd)) return false;
    this.live[fd] = 0;
    this.size--;
    return true;
  }

  /** True when fd is registered. */
  has(fd: number): boolean {
    return fd >= 0 && fd < this.live.length && this.live[fd] === 1;
  }

  /** True when (fd, generation) names the current registration. */
  current(fd: number, generation: number): boolean {
    return fd >= 0 && fd < this.live.length && this.live[fd] === 1 && this.gen[fd] === generation;
  }

  #grow(fd: number): void {
    if (fd < this.live.length) return;
    let n = this.live.length;
    while (n <= fd) n *= 2;
    const gen = new Uint32Array(n);
    gen.set(this.gen);
    const token = new Uint32Array(n);
    token.set(this.token);
    const interest = new Uint8Array(n);
    interest.set(this.interest);
    const live = new Uint8Array(n);
    live.set(this.live);
    this.gen = gen;
    this.token = token;
    this.interest = interest;
    this.live = live;
  }
}

function checkToken(token: number): void {
  if (!Number.isInteger(token) || token < 0 || token > 0xffffffff) {
    throw new PollerError("INVALID_ARGUMENT", `token must be a 32-bit unsigned integer`);
  }
}
