/**
 * zlib through `Deno.dlopen`: the library opened lazily once per isolate, the symbols the
 * permessage-deflate streams call, zlib.h's constants, and the byte layout of `z_stream`,
 * a structure the caller allocates itself.
 *
 * Synchronous on purpose: a message is compressed or inflated in one short call on the loop
 * thread, like every other call here. (`node:zlib` is asynchronous and importing Deno's Node
 * layer costs about 10 MB of resident memory.)
 *
 * @module
 */

import { FdwsError } from "../errors.ts";

/** Success (zlib.h's return codes and flush modes are identical on every platform). */
export const Z_OK: number = 0;
/** The end of a stream (a block with BFINAL set) was decoded. */
export const Z_STREAM_END: number = 1;
/** Inflate needs a preset dictionary (never for raw deflate). */
export const Z_NEED_DICT: number = 2;
/** Inconsistent stream state or invalid parameter. */
export const Z_STREAM_ERROR: number = -2;
/** Input is not valid DEFLATE data. */
export const Z_DATA_ERROR: number = -3;
/** zlib could not allocate memory. */
export const Z_MEM_ERROR: number = -4;
/** No progress was possible (no input or no room for output); not fatal. */
export const Z_BUF_ERROR: number = -5;
/** The library's major version differs from the one the caller assumed. */
export const Z_VERSION_ERROR: number = -6;
/** Flush: emit everything so far and align to a byte with an empty stored block. */
export const Z_SYNC_FLUSH: number = 2;
/** Compression level chosen by zlib (6). */
export const Z_DEFAULT_COMPRESSION: number = -1;
/** The only method zlib implements. */
export const Z_DEFLATED: number = 8;
/** Normal string matching. */
export const Z_DEFAULT_STRATEGY: number = 0;

/**
 * Offsets and size of `struct z_stream_s` (zlib.h) for one C data model.
 *
 * Field order: next_in (pointer), avail_in (uInt), total_in (uLong), next_out, avail_out,
 * total_out, msg, state, zalloc, zfree, opaque (pointers), data_type (int), adler, reserved
 * (uLong). `uInt` and `int` are 4 bytes everywhere; pointers and `uLong` vary.
 */
export interface ZStreamLayout {
  /** `sizeof(z_stream)`, also passed to the init functions, which check it. */
  readonly size: number;
  /** `next_in`: next input byte (pointer). */
  readonly nextIn: number;
  /** `avail_in`: bytes available at next_in (uInt). */
  readonly availIn: number;
  /** `total_in`: input bytes read so far (uLong). */
  readonly totalIn: number;
  /** `next_out`: where the next output byte goes (pointer). */
  readonly nextOut: number;
  /** `avail_out`: room left at next_out (uInt). */
  readonly availOut: number;
  /** `total_out`: output bytes written so far (uLong). */
  readonly totalOut: number;
  /** `msg`: last error message or NULL (pointer). */
  readonly msg: number;
  /** `state`: zlib's internal state (pointer). */
  readonly state: number;
  /** `zalloc`: allocation function, NULL for zlib's default. */
  readonly zalloc: number;
  /** `zfree`: release function, NULL for zlib's default. */
  readonly zfree: number;
  /** `opaque`: passed to zalloc and zfree. */
  readonly opaque: number;
  /** `data_type`: deflate's guess of the data type, inflate's decoding state (int). */
  readonly dataType: number;
  /** `adler`: Adler-32 or CRC-32 of the uncompressed data (uLong). */
  readonly adler: number;
  /** `reserved`: unused (uLong). */
  readonly reserved: number;
}

/**
 * C data models: LP64 (64-bit Linux, macOS, FreeBSD: 8-byte pointers and `long`), LLP64
 * (64-bit Windows: 8-byte pointers, 4-byte `long`), ILP32 (32-bit systems).
 */
export type DataModel = "LP64" | "LLP64" | "ILP32";

/**
 * The `z_stream` layout of a data model, laid out by the C rules (each field aligned to its
 * own size, the whole padded to its largest member).
 *
 * @example
 * ```ts
 * import { zStreamLayout } from "./zlib.ts";
 *
 * const layout = zStreamLayout("LP64");
 * console.log(layout.size, layout.availOut, layout.adler); // 112 32 96
 * ```
 *
 * @param model The data model of the process.
 * @returns Offsets in bytes.
 */
export function zStreamLayout(model: DataModel): ZStreamLayout {
  const pointer = model === "ILP32" ? 4 : 8;
  const ulong = model === "LP64" ? 8 : 4;
  let offset = 0;
  let largest = 1;
  const field = (size: number): number => {
    offset = Math.ceil(offset / size) * size;
    const at = offset;
    offset += size;
    largest = Math.max(largest, size);
    return at;
  };
  const nextIn = field(pointer);
  const availIn = field(4);
  const totalIn = field(ulong);
  const nextOut = field(pointer);
  const availOut = field(4);
  const totalOut = field(ulong);
  const msg = field(pointer);
  const state = field(pointer);
  const zalloc = field(pointer);
  const zfree = field(pointer);
  const opaque = field(pointer);
  const dataType = field(4);
  const adler = field(ulong);
  const reserved = field(ulong);
  const size = Math.ceil(offset / largest) * largest;
  return {
    size,
    nextIn,
    availIn,
    totalIn,
    nextOut,
    availOut,
    totalOut,
    msg,
    state,
    zalloc,
    zfree,
    opaque,
    dataType,
    adler,
    reserved,
  };
}

/**
 * The layout of the running process. Every system this package supports (Linux, macOS,
 * FreeBSD on x86_64 and aarch64) is LP64.
 */
export const Z_STREAM: ZStreamLayout = zStreamLayout("LP64");

/**
 * The symbols bound. `deflateInit2_`/`inflateInit2_` are the real entry points behind the
 * `deflateInit2`/`inflateInit2` macros: they take the caller's idea of the library version
 * (only its first character is compared) and `sizeof(z_stream)`, and refuse a mismatch with
 * Z_VERSION_ERROR, which is our guard against a wrong layout. The stream is a `buffer`
 * parameter: a structure in an `ArrayBuffer` we own.
 */
export const ZLIB_SYMBOLS = {
  zlibVersion: { parameters: [], result: "pointer" },
  deflateInit2_: {
    parameters: ["buffer", "i32", "i32", "i32", "i32", "i32", "pointer", "i32"],
    result: "i32",
  },
  deflate: { parameters: ["buffer", "i32"], result: "i32" },
  deflateReset: { parameters: ["buffer"], result: "i32" },
  deflateEnd: { parameters: ["buffer"], result: "i32" },
  inflateInit2_: { parameters: ["buffer", "i32", "pointer", "i32"], result: "i32" },
  inflate: { parameters: ["buffer", "i32"], result: "i32" },
  inflateReset: { parameters: ["buffer"], result: "i32" },
  inflateEnd: { parameters: ["buffer"], result: "i32" },
  inflateGetDictionary: { parameters: ["buffer", "buffer", "buffer"], result: "i32" },
  inflateSetDictionary: { parameters: ["buffer", "buffer", "u32"], result: "i32" },
} as const;

/** The bound symbols. */
export type ZlibSymbols = Deno.DynamicLibrary<typeof ZLIB_SYMBOLS>["symbols"];

/** The opened library. */
export interface Zlib {
  /** The bound functions. */
  readonly sym: ZlibSymbols;
  /** `zlibVersion()`: the library's version string, passed back to the init functions. */
  readonly version: Deno.PointerObject;
  /** The same version as text, e.g. `"1.2.13"` or `"1.3.0.zlib-ng"`. */
  readonly versionText: string;
  /** The path or name it was opened from. */
  readonly path: string;
}

/**
 * Names and paths tried, in order, per operating system: the soname on Linux and FreeBSD;
 * on macOS the system library (served from the dyld shared cache) then Homebrew's.
 *
 * @example
 * ```ts
 * import { zlibCandidates } from "./zlib.ts";
 *
 * console.log(zlibCandidates("linux")); // ["libz.so.1"]
 * ```
 *
 * @param os An operating system name as in `Deno.build.os`.
 * @returns Paths to try with `Deno.dlopen`; empty for an unsupported system.
 */
export function zlibCandidates(os: string = Deno.build.os): string[] {
  switch (os) {
    case "linux":
      return ["libz.so.1"];
    case "darwin":
      return [
        "libz.1.dylib",
        "/usr/lib/libz.1.dylib",
        "/opt/homebrew/opt/zlib/lib/libz.1.dylib",
        "/usr/local/opt/zlib/lib/libz.1.dylib",
      ];
    case "freebsd":
      return ["libz.so.6"];
    default:
      return [];
  }
}

/**
 * Thrown when zlib cannot be opened on this system; `code` is `"ZLIB_UNAVAILABLE"`. The
 * failures of each path tried are in `cause` (an `AggregateError`).
 *
 * @example
 * ```ts
 * import { ZlibUnavailableError } from "./zlib.ts";
 *
 * const err = new ZlibUnavailableError("no zlib here", []);
 * console.log(err.code); // "ZLIB_UNAVAILABLE"
 * ```
 */
export class ZlibUnavailableError extends FdwsError {
  /**
   * Creates the error.
   *
   * @param message Human-readable description.
   * @param failures The error of each path tried.
   */
  constructor(message: string, failures: unknown[]) {
    super("ZLIB_UNAVAILABLE", message, { cause: new AggregateError(failures) });
    this.name = "ZlibUnavailableError";
  }
}

let instance: Zlib | null = null;
let failure: ZlibUnavailableError | null = null;

/**
 * Returns the process-wide zlib binding, opening it on first call. Needs `--allow-ffi`
 * (a missing permission is thrown as Deno throws it, not as unavailability).
 *
 * @throws {ZlibUnavailableError} when no candidate path opens or a symbol is missing; the
 * failure is remembered, so later calls throw it again without retrying.
 *
 * @example
 * ```ts
 * import { zlib } from "./zlib.ts";
 *
 * console.log(zlib().versionText.startsWith("1.")); // true
 * ```
 */
export function zlib(): Zlib {
  if (instance !== null) return instance;
  if (failure !== null) throw failure;
  const failures: unknown[] = [];
  const candidates = zlibCandidates();
  for (const path of candidates) {
    let lib: Deno.DynamicLibrary<typeof ZLIB_SYMBOLS>;
    try {
      lib = Deno.dlopen(path, ZLIB_SYMBOLS);
    } catch (err) {
      if (err instanceof Deno.errors.NotCapable || err instanceof Deno.errors.PermissionDenied) {
        throw err;
      }
      failures.push(err);
      continue;
    }
    const version = lib.symbols.zlibVersion();
    if (version === null) {
      lib.close();
      failures.push(new Error(`${path}: zlibVersion() returned NULL`));
      continue;
    }
    instance = {
      sym: lib.symbols,
      version,
      versionText: Deno.UnsafePointerView.getCString(version),
      path,
    };
    return instance;
  }
  failure = new ZlibUnavailableError(
    candidates.length === 0
      ? `fdws: no known zlib for operating system "${Deno.build.os}"`
      : `fdws: zlib could not be opened (tried ${candidates.join(", ")})`,
    failures,
  );
  throw failure;
}
