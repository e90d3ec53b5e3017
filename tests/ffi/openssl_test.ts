/**
 * The OpenSSL binding: it loads here (OpenSSL 3), a missing library fails with
 * TLS_UNAVAILABLE naming what to install, the error queue is read and emptied.
 */

import assert from "node:assert/strict";
import {
  loadOpenSsl,
  openSsl,
  openSslCandidates,
  takeOpenSslErrors,
  TlsError,
} from "../../ffi/openssl.ts";

Deno.test("OpenSSL binding", async (t) => {
  await t.step("OpenSSL 3 loads once per isolate", () => {
    const lib = openSsl();
    assert.equal(openSsl(), lib);
    assert.ok(lib.versionNumber >= 0x30000000, lib.versionNumber.toString(16));
  });

  await t.step("library names per system", () => {
    assert.deepEqual(openSslCandidates("linux"), [{
      ssl: "libssl.so.3",
      crypto: "libcrypto.so.3",
    }]);
    assert.ok(openSslCandidates("darwin").some((c) => c.ssl.startsWith("/opt/homebrew/")));
    assert.ok(openSslCandidates("darwin").every((c) => !c.ssl.startsWith("/usr/lib/")));
    assert.ok(openSslCandidates("freebsd").length > 0);
    assert.deepEqual(openSslCandidates("windows"), []);
  });

  await t.step("a missing library says what to install", () => {
    const cases: [string, RegExp][] = [
      ["linux", /apt install libssl3/],
      ["darwin", /brew install openssl@3/],
      ["freebsd", /pkg install openssl/],
    ];
    for (const [os, hint] of cases) {
      assert.throws(
        () => loadOpenSsl([{ ssl: "libfdws-nossl.so.3", crypto: "libfdws-nocrypto.so.3" }], os),
        (err: unknown) => {
          assert.ok(err instanceof TlsError);
          assert.equal(err.code, "TLS_UNAVAILABLE");
          assert.match(err.message, hint);
          assert.match(err.message, /libfdws-nossl\.so\.3/);
          return true;
        },
      );
    }
  });

  await t.step("the error queue is read and emptied", () => {
    const { ssl } = openSsl();
    // SSL_CTX_new(NULL) fails and queues an error.
    assert.equal(ssl.SSL_CTX_new(null), null);
    const text = takeOpenSslErrors();
    assert.match(text, /error:/);
    assert.equal(takeOpenSslErrors(), "");
  });
});
