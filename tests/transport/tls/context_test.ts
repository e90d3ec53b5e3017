/**
 * TLS configuration: server and client contexts built from PEM text, bytes or files, and
 * every kind of bad input failing at construction with its typed code (never at the first
 * connection), OpenSSL's error queue left empty; SNI generations released once idle; the
 * pure helpers (PEM detection, ALPN wire form, server-name matching).
 */

import assert from "node:assert/strict";
import { takeOpenSslErrors, TlsError } from "../../../ffi/openssl.ts";
import { alpnWire } from "../../../transport/tls/alpn.ts";
import { defaultClientContext, TlsClientContext } from "../../../transport/tls/client_context.ts";
import { newNativeContext } from "../../../transport/tls/native.ts";
import { isPemText } from "../../../transport/tls/pem.ts";
import { TlsServerContext } from "../../../transport/tls/server_context.ts";
import { ServerGeneration, serverNameMatches } from "../../../transport/tls/sni.ts";
import { makeTestPki } from "../../fixtures/tls.ts";
import { opensslCommand } from "../../deps/tools.ts";

function rejects(fn: () => unknown, code: string, message?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof TlsError, `not a TlsError: ${err}`);
    assert.equal(err.code, code, err.message);
    if (message !== undefined) assert.match(err.message, message);
    return true;
  });
  assert.equal(takeOpenSslErrors(), "", "OpenSSL's error queue is left empty");
}

Deno.test("TLS contexts", async (t) => {
  const pki = makeTestPki();
  const text = (path: string) => Deno.readTextFileSync(path);
  const write = (name: string, content: string) => {
    Deno.writeTextFileSync(`${pki.dir}/${name}`, content);
    return `${pki.dir}/${name}`;
  };
  try {
    await t.step("a server context from files, PEM text, bytes and a chain", () => {
      const inputs = [
        { cert: pki.cert, key: pki.key },
        { cert: text(pki.cert), key: text(pki.key) },
        { cert: Deno.readFileSync(pki.cert), key: Deno.readFileSync(pki.key) },
        { cert: pki.chainCert, key: pki.chainKey },
      ];
      for (const input of inputs) {
        const ctx = new TlsServerContext(input);
        assert.equal(ctx.role, "server");
        assert.equal(ctx.generation, 1);
        ctx.close();
        ctx.close();
        assert.throws(() => ctx.current(), { code: "TLS_CLOSED" });
        assert.throws(() => ctx.reload(), { code: "TLS_CLOSED" });
      }
    });

    await t.step("unreadable files name the file", () => {
      const missing = `${pki.dir}/missing.pem`;
      rejects(
        () => new TlsServerContext({ cert: missing, key: pki.key }),
        "CERT_UNREADABLE",
        /missing\.pem/,
      );
      rejects(
        () => new TlsServerContext({ cert: pki.cert, key: missing }),
        "KEY_UNREADABLE",
        /missing\.pem/,
      );
      rejects(() => new TlsServerContext({ cert: pki.dir, key: pki.key }), "CERT_UNREADABLE");
    });

    await t.step("input that is not what it should be", () => {
      const notPem = write("hello.txt", "hello, not a certificate\n");
      const damaged = write(
        "damaged.pem",
        text(pki.cert).replace(/\n[A-Za-z0-9+/]{20}/, "\n!!!!!!!!!!!!!!!!!!!!"),
      );
      rejects(
        () => new TlsServerContext({ cert: notPem, key: pki.key }),
        "CERT_INVALID",
        /hello\.txt/,
      );
      rejects(() => new TlsServerContext({ cert: damaged, key: pki.key }), "CERT_INVALID");
      rejects(() => new TlsServerContext({ cert: pki.key, key: pki.key }), "CERT_INVALID");
      rejects(() => new TlsServerContext({ cert: pki.cert, key: pki.cert }), "KEY_INVALID");
      rejects(() => new TlsServerContext({ cert: pki.cert, key: notPem }), "KEY_INVALID");
      rejects(() => new TlsServerContext({ cert: "", key: pki.key }), "CERT_INVALID");
      rejects(
        () => new TlsServerContext({ cert: new Uint8Array(0), key: pki.key }),
        "CERT_INVALID",
      );
      rejects(
        () => new TlsServerContext({ cert: pki.cert } as unknown as { cert: string; key: string }),
        "TLS_INVALID_ARGUMENT",
        /key/,
      );
      rejects(
        () => new TlsServerContext(null as unknown as { cert: string; key: string }),
        "TLS_INVALID_ARGUMENT",
      );
    });

    await t.step("a key that belongs to another certificate", () => {
      rejects(() => new TlsServerContext({ cert: pki.cert, key: pki.strayKey }), "KEY_MISMATCH");
      rejects(() => new TlsServerContext({ cert: pki.chainCert, key: pki.key }), "KEY_MISMATCH");
    });

    await t.step("an encrypted key needs its passphrase (and never prompts)", () => {
      const out = new Deno.Command(opensslCommand(), {
        args: [
          "pkey",
          "-in",
          pki.key,
          "-aes256",
          "-passout",
          "pass:s3cret",
          "-out",
          `${pki.dir}/enc.key`,
        ],
        stderr: "null",
      }).outputSync();
      assert.equal(out.code, 0);
      const key = `${pki.dir}/enc.key`;
      rejects(() => new TlsServerContext({ cert: pki.cert, key }), "KEY_INVALID", /passphrase/);
      rejects(
        () => new TlsServerContext({ cert: pki.cert, key, passphrase: "wrong" }),
        "KEY_INVALID",
        /passphrase/,
      );
      new TlsServerContext({ cert: pki.cert, key, passphrase: "s3cret" }).close();
    });

    await t.step("SNI entries are checked like the default one", () => {
      rejects(
        () =>
          new TlsServerContext({
            cert: pki.cert,
            key: pki.key,
            sni: { "a.test": { cert: `${pki.dir}/nope.pem`, key: pki.aKey } },
          }),
        "CERT_UNREADABLE",
      );
      rejects(
        () =>
          new TlsServerContext({
            cert: pki.cert,
            key: pki.key,
            sni: { "a.test": { cert: pki.aCert, key: pki.bKey } },
          }),
        "KEY_MISMATCH",
        /SNI a\.test/,
      );
      rejects(
        () =>
          new TlsServerContext({
            cert: pki.cert,
            key: pki.key,
            sni: { "bad name": { cert: pki.aCert, key: pki.aKey } },
          }),
        "TLS_INVALID_ARGUMENT",
      );
      const ok = new TlsServerContext({
        cert: pki.cert,
        key: pki.key,
        sni: {
          "a.test": { cert: pki.aCert, key: pki.aKey },
          "*.b.test": { cert: pki.bCert, key: pki.bKey },
        },
      });
      ok.reload({ sni: {} });
      assert.equal(ok.generation, 2);
      ok.close();
    });

    await t.step("client contexts: system store, a CA file, CA text, a list", () => {
      const contexts = [
        new TlsClientContext(),
        new TlsClientContext({ ca: pki.ca }),
        new TlsClientContext({ ca: text(pki.ca) }),
        new TlsClientContext({ ca: [pki.ca, pki.otherCa, pki.ca] }),
        new TlsClientContext({ verify: false, alpn: ["h2", "http/1.1"], minVersion: "TLSv1.3" }),
      ];
      for (const c of contexts) {
        assert.equal(c.role, "client");
        c.close();
        c.close();
        assert.throws(() => c.current(), { code: "TLS_CLOSED" });
      }
      assert.equal(defaultClientContext(), defaultClientContext());
      assert.equal(defaultClientContext().verify, true);
      rejects(() => new TlsClientContext({ ca: `${pki.dir}/none.pem` }), "CA_UNREADABLE");
      rejects(() => new TlsClientContext({ ca: write("ca.txt", "not a CA") }), "CA_INVALID");
      rejects(() => new TlsClientContext({ alpn: [""] }), "TLS_INVALID_ARGUMENT");
    });

    await t.step("a retired generation is released once its handshakes ended", () => {
      const a = newNativeContext({ role: "server", ktls: false });
      const b = newNativeContext({ role: "server", ktls: false });
      const gen = new ServerGeneration(a, [["*.b.test", b]]);
      assert.equal(gen.names, 1);
      assert.equal(gen.contextFor("x.b.test"), b);
      assert.equal(gen.contextFor("X.B.TEST."), b);
      assert.equal(gen.contextFor("b.test"), a);
      assert.equal(gen.contextFor(""), a);
      gen.enter();
      gen.enter();
      gen.retire();
      assert.equal(gen.released, false);
      gen.leave();
      assert.equal(gen.released, false);
      gen.leave();
      assert.equal(gen.released, true);
    });
  } finally {
    pki.remove();
  }
});

Deno.test("TLS helpers", () => {
  assert.equal(isPemText("-----BEGIN CERTIFICATE-----\nMII...\n"), true);
  assert.equal(isPemText("/etc/ssl/cert.pem"), false);
  assert.equal(isPemText(new Uint8Array([1])), true);
  assert.deepEqual([...alpnWire(["h2", "http/1.1"])], [
    2,
    104,
    50,
    8,
    ...new TextEncoder().encode("http/1.1"),
  ]);
  assert.throws(() => alpnWire(["x".repeat(256)]), { code: "TLS_INVALID_ARGUMENT" });
  const cases: [string, string, boolean][] = [
    ["example.com", "example.com", true],
    ["example.com", "www.example.com", false],
    ["*.example.com", "www.example.com", true],
    ["*.example.com", "example.com", false],
    ["*.example.com", "a.b.example.com", false],
    ["*.example.com", ".example.com", false],
  ];
  for (const [pattern, name, match] of cases) {
    assert.equal(serverNameMatches(pattern, name), match, `${pattern} ${name}`);
  }
});
