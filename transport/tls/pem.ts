/**
 * Certificates and keys given as PEM text or as file paths, turned into OpenSSL objects
 * through read-only memory BIOs (nothing is written to disk, and OpenSSL never opens the
 * files itself, so every failure is reported here with the path and what to fix).
 *
 * @module
 */

import { openSsl, takeOpenSslErrors, TlsError, toCString } from "../../ffi/openssl.ts";

/** A PEM input: PEM text, the PEM bytes, or the path of a PEM file. */
export type PemInput = string | Uint8Array;

/** What a PEM input holds, for messages and error codes. */
export type PemRole = "CERT" | "KEY" | "CA";

const ROLE_NAME: Record<PemRole, string> = {
  CERT: "certificate",
  KEY: "private key",
  CA: "CA certificate",
};

/**
 * True when `input` is PEM text itself rather than the path of a file: it contains a
 * `-----BEGIN ` armour line. A path never does.
 *
 * @param input The option as given.
 * @returns Whether it is inline PEM.
 *
 * @example
 * ```ts
 * import { isPemText } from "./pem.ts";
 * console.log(isPemText("-----BEGIN CERTIFICATE-----\n..."), isPemText("./cert.pem")); // true false
 * ```
 */
export function isPemText(input: PemInput): boolean {
  if (typeof input !== "string") return true;
  return input.includes("-----BEGIN ");
}

/**
 * The PEM bytes of an input: the text itself, or the file it names. Throws a
 * {@link TlsError} `CERT_UNREADABLE`/`KEY_UNREADABLE`/`CA_UNREADABLE` when the file cannot
 * be read, and `..._INVALID` when the input is empty or not a string or bytes.
 *
 * @param input PEM text, bytes or a path.
 * @param role What the input should hold (for the error code and message).
 * @returns The PEM bytes.
 *
 * @example
 * ```ts
 * import { readPem } from "./pem.ts";
 * try {
 *   readPem("/nonexistent/cert.pem", "CERT");
 * } catch (err) {
 *   console.log((err as { code: string }).code); // "CERT_UNREADABLE"
 * }
 * ```
 */
export function readPem(input: PemInput, role: PemRole): Uint8Array<ArrayBuffer> {
  if (input instanceof Uint8Array) {
    if (input.length === 0) {
      throw new TlsError(`${role}_INVALID`, `the ${ROLE_NAME[role]} is empty`);
    }
    return new Uint8Array(input);
  }
  if (typeof input !== "string" || input === "") {
    throw new TlsError(
      `${role}_INVALID`,
      `the ${ROLE_NAME[role]} must be PEM text, PEM bytes or the path of a PEM file`,
    );
  }
  if (isPemText(input)) return new TextEncoder().encode(input);
  try {
    return Deno.readFileSync(input);
  } catch (err) {
    throw new TlsError(
      `${role}_UNREADABLE`,
      `cannot read the ${ROLE_NAME[role]} file "${input}": ${(err as Error).message}`,
      { cause: err },
    );
  }
}

/** Where an input came from, for messages. */
function origin(input: PemInput): string {
  return typeof input === "string" && !isPemText(input) ? `file "${input}"` : "PEM text";
}

/**
 * Every certificate in a PEM input, in order, as owned `X509*` pointers (free each with
 * `X509_free`, or hand it to a call that takes a reference and then free it). Throws
 * `CERT_INVALID`/`CA_INVALID` when none could be read or a later one is damaged.
 *
 * @param input PEM text, bytes or a path.
 * @param role `"CERT"` (the first is the leaf, the rest its chain) or `"CA"`.
 * @returns One pointer per certificate, at least one.
 */
export function readCertificates(input: PemInput, role: "CERT" | "CA"): Deno.PointerObject[] {
  const pem = readPem(input, role);
  const { crypto } = openSsl();
  const bio = crypto.BIO_new_mem_buf(pem, pem.length);
  if (bio === null) throw new TlsError("TLS_CONFIG", `BIO_new_mem_buf: ${takeOpenSslErrors()}`);
  const certs: Deno.PointerObject[] = [];
  try {
    for (;;) {
      const x = crypto.PEM_read_bio_X509(bio, null, null, null);
      if (x === null) break;
      certs.push(x);
    }
    // The loop ends on "no start line" when the input is used up; anything else, or no
    // certificate at all, is a damaged or foreign input.
    const why = takeOpenSslErrors();
    const ended = why === "" || /no start line/i.test(why);
    if (certs.length === 0 || !ended) {
      throw new TlsError(
        `${role}_INVALID`,
        `the ${ROLE_NAME[role]} ${origin(input)} holds no readable PEM certificate` +
          (certs.length > 0 ? ` after the first ${certs.length}` : "") +
          (why !== "" ? ` (${why})` : ""),
      );
    }
    return certs;
  } catch (err) {
    for (const x of certs) crypto.X509_free(x);
    throw err;
  } finally {
    crypto.BIO_free(bio);
  }
}

/**
 * The private key of a PEM input as an owned `EVP_PKEY*` (free it with `EVP_PKEY_free`).
 * An encrypted key needs `passphrase`; without one OpenSSL is given an empty passphrase so
 * that it never prompts on the terminal. Throws `KEY_INVALID` when no key could be read.
 *
 * @param input PEM text, bytes or a path.
 * @param passphrase Passphrase of an encrypted key.
 * @returns The key.
 */
export function readPrivateKey(input: PemInput, passphrase?: string): Deno.PointerObject {
  const pem = readPem(input, "KEY");
  const { crypto } = openSsl();
  const bio = crypto.BIO_new_mem_buf(pem, pem.length);
  if (bio === null) throw new TlsError("TLS_CONFIG", `BIO_new_mem_buf: ${takeOpenSslErrors()}`);
  try {
    // With a NULL callback OpenSSL takes the last argument as the passphrase (PEM_read(3)).
    const key = crypto.PEM_read_bio_PrivateKey(bio, null, null, toCString(passphrase ?? ""));
    if (key === null) {
      const why = takeOpenSslErrors();
      const encrypted = new TextDecoder().decode(pem).includes("ENCRYPTED");
      throw new TlsError(
        "KEY_INVALID",
        `the private key ${origin(input)} could not be read` +
          (encrypted
            ? passphrase === undefined
              ? " (it is encrypted: pass its passphrase)"
              : " (wrong passphrase?)"
            : "") +
          (why !== "" ? ` (${why})` : ""),
      );
    }
    return key;
  } finally {
    crypto.BIO_free(bio);
  }
}
