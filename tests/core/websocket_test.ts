/**
 * The connection object over real loopback sockets, under every poller that runs here:
 * the ws4py-style hooks of a `webSocketClass` subclass, the handler functions, WHATWG
 * events on the server-side object, exactly-once `closed()` with the right code, what
 * `terminate()`/`send()`/`close()` do around the end of a connection, callbacks that
 * throw, heartbeats and the closing-handshake timeout.
 *
 * Clients are `npm:ws` (a real, conforming client) and a raw `Deno.connect` client that
 * misbehaves on purpose. Every test checks /proc/self/fd before and after.
 */

import assert from "node:assert/strict";
import { SendStatus, type Server, WebSocket } from "../../mod.ts";
import { delay, waitFor } from "../fixtures/harness.ts";
import { parseClose, serverTest, withServer } from "../fixtures/manager/helpers.ts";

const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

/** The only connection of a server. */
function only<T>(server: Server<T>): WebSocket<T> {
  const all = [...server.manager];
  assert.equal(all.length, 1, "expected exactly one connection");
  return all[0];
}

/** Runs `fn` with console.error captured; returns the Error objects it was given. */
async function errorsPrinted(fn: () => Promise<void>): Promise<Error[]> {
  const original = console.error;
  const printed: unknown[][] = [];
  console.error = (...args: unknown[]): void => {
    printed.push(args);
  };
  try {
    await fn();
  } finally {
    console.error = original;
  }
  return printed.flat().filter((x): x is Error => x instanceof Error);
}

serverTest("a webSocketClass subclass runs its overridden lifecycle hooks", async (poller) => {
  const log: string[] = [];
  class Hooked extends WebSocket {
    override opened(): void {
      log.push("opened");
      this.send("welcome");
    }
    override receivedMessage(data: string | Uint8Array): void {
      if (typeof data !== "string") {
        log.push(`binary:${data.join(",")}`);
        this.send(data);
      } else if (data === "ping me") {
        log.push("message:ping me");
        this.ping("p1");
      } else {
        log.push(`message:${data}`);
        this.send(`echo:${data}`);
      }
    }
    override pinged(payload: Uint8Array): void {
      log.push(`pinged:${dec(payload)}`);
    }
    override ponged(payload: Uint8Array): void {
      log.push(`ponged:${dec(payload)}`);
      this.send("got pong");
    }
    override closed(code: number, reason: string): void {
      log.push(`closed:${code}:${reason}`);
    }
  }
  await withServer({ poller, webSocketClass: Hooked }, async (server, scope) => {
    const c = await scope.client(server.port);
    assert.equal(await c.nextText(), "welcome");
    assert.ok(only(server) instanceof Hooked);
    await c.send("hi");
    assert.equal(await c.nextText(), "echo:hi");
    await c.send(new Uint8Array([1, 2, 3]));
    const b = await c.next();
    assert.equal(b.binary, true);
    assert.deepEqual([...(b.data as Uint8Array)], [1, 2, 3]);
    await c.send("ping me");
    assert.equal(await c.nextText(), "got pong");
    c.ws.ping("cp");
    await waitFor(() => c.pongs.length === 1, 2_000, "the automatic pong");
    assert.equal(c.pongs[0], "cp");
    assert.equal((await c.close(4001, "done")).code, 4001);
    await waitFor(() => server.manager.size === 0, 2_000, "server side closed");
    await delay(50);
    assert.deepEqual(log, [
      "opened",
      "message:hi",
      "binary:1,2,3",
      "message:ping me",
      "ponged:p1",
      "pinged:cp",
      "closed:4001:done",
    ]);
    assert.equal(server.manager.stats.closedByCode[4001], 1);
  });
});

serverTest("handler functions see open, message, ping, pong and close", async (poller) => {
  const log: string[] = [];
  await withServer({
    poller,
    websocket: {
      open(ws) {
        log.push(`open ${ws.url}`);
        ws.send("hello");
      },
      message(ws, data) {
        if (data === "ping me") {
          ws.ping("from server");
          return;
        }
        log.push(`message ${typeof data === "string" ? data : "binary"}`);
        ws.send(data as string | Uint8Array);
      },
      ping(_ws, payload) {
        log.push(`ping ${dec(payload)}`);
      },
      pong(ws, payload) {
        log.push(`pong ${dec(payload)}`);
        ws.send("pong seen");
      },
      close(_ws, code, reason) {
        log.push(`close ${code} ${reason}`);
      },
    },
  }, async (server, scope) => {
    const c = await scope.client(server.port, "/room?x=1");
    assert.equal(await c.nextText(), "hello");
    await c.send("abc");
    assert.equal(await c.nextText(), "abc");
    const bytes = new Uint8Array(70_000).map((_, i) => i & 0xff);
    await c.send(bytes);
    const echoed = await c.next();
    assert.equal(echoed.binary, true);
    assert.deepEqual(echoed.data, bytes);
    c.ws.ping("hb");
    await waitFor(() => c.pongs.length === 1, 2_000, "pong to the client's ping");
    assert.equal(c.pongs[0], "hb");
    await c.send("ping me");
    assert.equal(await c.nextText(), "pong seen");
    assert.deepEqual(c.pings, ["from server"]);
    await c.close(1000, "bye");
    await waitFor(() => log.at(-1)?.startsWith("close") ?? false, 2_000, "close handler");
    assert.deepEqual(log, [
      "open /room?x=1",
      "message abc",
      "message binary",
      "ping hb",
      "pong from server",
      "close 1000 bye",
    ]);
  });
});

serverTest("WHATWG events and on* properties work on the server-side ws", async (poller) => {
  const seen: string[] = [];
  let server!: Server;
  await withServer({
    poller,
    websocket: {
      open(ws) {
        const once = (): void => {
          seen.push("once");
        };
        const removed = (): void => {
          seen.push("removed listener ran");
        };
        ws.addEventListener("message", once, { once: true });
        ws.addEventListener("message", removed);
        ws.removeEventListener("message", removed);
        ws.addEventListener("message", (ev) => {
          const me = ev as MessageEvent;
          assert.equal(me.target, ws);
          if (typeof me.data === "string") {
            seen.push(`listener ${me.data}`);
            if (me.data === "arraybuffer") ws.binaryType = "arraybuffer";
            ws.send(`ev:${me.data}`);
          } else {
            seen.push(`listener ${me.data.constructor.name} ${me.data.byteLength}`);
            ws.send(me.data);
          }
        });
        ws.onmessage = (ev: MessageEvent) => {
          seen.push(`onmessage ${typeof ev.data}`);
        };
        ws.addEventListener("close", (ev) => {
          const ce = ev as CloseEvent;
          seen.push(`close listener ${ce.code} ${ce.reason} ${ce.wasClean}`);
        });
        ws.onclose = (ev: CloseEvent) => {
          seen.push(`onclose ${ev.code} ${ev.reason} ${ev.wasClean} ${ws.readyState}`);
        };
      },
    },
  }, async (s, scope) => {
    server = s;
    const c = await scope.client(server.port);
    await c.send("one");
    assert.equal(await c.nextText(), "ev:one");
    await c.send(new Uint8Array([9, 8]));
    assert.deepEqual([...(await c.next()).data as Uint8Array], [9, 8]);
    await c.send("arraybuffer");
    assert.equal(await c.nextText(), "ev:arraybuffer");
    await c.send(new Uint8Array([7]));
    assert.deepEqual([...(await c.next()).data as Uint8Array], [7]);
    await c.close(4100, "events");
    await waitFor(() => seen.some((s) => s.startsWith("close listener")), 2_000, "close event");
  });
  // Issue 15: listeners and on* handlers run in the order they were registered (WHATWG);
  // here the listeners came first.
  assert.deepEqual(seen, [
    "once",
    "listener one",
    "onmessage string",
    "listener Uint8Array 2",
    "onmessage object",
    "listener arraybuffer",
    "onmessage string",
    "listener ArrayBuffer 1",
    "onmessage object",
    "close listener 4100 events true",
    "onclose 4100 events true 3",
  ]);
});

serverTest("closed() runs exactly once, with the code the peer gave or 1006", async (poller) => {
  const closes = new Map<string, string[]>();
  const sockets = new Map<string, WebSocket>();
  await withServer({
    poller,
    websocket: {
      open(ws) {
        sockets.set(ws.url, ws);
      },
      message(ws, data) {
        ws.send(data as string);
      },
      close(ws, code, reason) {
        const list = closes.get(ws.url) ?? [];
        list.push(`${code}:${reason}`);
        closes.set(ws.url, list);
      },
    },
  }, async (server, scope) => {
    const stats = server.manager.stats;
    // A raw client that vanishes without a close frame.
    const raw = await scope.raw(server.port, "/vanish");
    await raw.close();
    // npm:ws terminate(): the TCP connection is destroyed, no close frame.
    const term = await scope.client(server.port, "/terminate");
    await term.terminate();
    // Clean closes, with and without a code.
    const clean = await scope.client(server.port, "/clean");
    assert.equal((await clean.close(4002, "bye")).code, 4002);
    const nocode = await scope.client(server.port, "/nocode");
    assert.equal((await nocode.close()).code, 1005);
    await waitFor(() => closes.size === 4, 3_000, "four closes");

    // Server-side terminate(), twice: one closed(), and the client sees an abnormal close.
    const killed = await scope.client(server.port, "/killed");
    await waitFor(() => sockets.has("/killed"), 2_000, "open");
    const ws = sockets.get("/killed")!;
    ws.terminate();
    ws.terminate();
    assert.equal(ws.readyState, WebSocket.CLOSED);
    // Issue 15: send() returns a status; CLOSED (-2) is the old `false` here.
    assert.equal(ws.send("late"), SendStatus.CLOSED);
    assert.equal(ws.ping(), false);
    ws.close(1000); // no-op once closed
    assert.equal((await killed.closed).code, 1006);

    // send() while closing returns false; the client's answer finishes with its code.
    const closing = await scope.client(server.port, "/closing");
    await waitFor(() => sockets.has("/closing"), 2_000, "open");
    const cws = sockets.get("/closing")!;
    cws.close(4003, "server says bye");
    assert.equal(cws.readyState, WebSocket.CLOSING);
    assert.equal(cws.send("too late"), SendStatus.CLOSED);
    assert.deepEqual(await closing.closed, { code: 4003, reason: "server says bye" });
    await waitFor(() => closes.size === 6, 2_000, "six closes");
    assert.equal(cws.send("later"), SendStatus.CLOSED);
    assert.equal(cws.readyState, WebSocket.CLOSED);
    assert.equal(closing.messages.length, 0);

    await delay(300); // any second closed() would have run by now
    assert.deepEqual(Object.fromEntries(closes), {
      "/vanish": ["1006:"],
      "/terminate": ["1006:"],
      "/clean": ["4002:bye"],
      "/nocode": ["1005:"],
      "/killed": ["1006:"],
      "/closing": ["4003:server says bye"], // npm:ws echoes the reason
    });
    assert.equal(stats.closedByCode[1006], 3);
    assert.equal(stats.closedByCode[4002], 1);
    assert.equal(stats.closedByCode[1005], 1);
    assert.equal(stats.closedByCode[4003], 1);
    assert.equal(server.manager.size, 0);
  });
});

serverTest("a throwing callback is reported and the server keeps serving", async (poller) => {
  const reported: string[] = [];
  await withServer({
    poller,
    websocket: {
      open(ws) {
        if (ws.url === "/open-throws") throw new Error("open failed");
        if (ws.url === "/listener-throws") {
          ws.addEventListener("message", () => {
            throw new Error("listener failed");
          });
          ws.onmessage = () => {
            throw new Error("onmessage failed");
          };
        }
      },
      message(ws, data) {
        if (data === "throw") throw new Error(`message failed on ${ws.url}`);
        ws.send(`echo:${data}`);
      },
      ping() {
        throw new Error("ping failed");
      },
      close(ws) {
        if (ws.url === "/close-throws") throw new Error("close failed");
      },
      error(ws, err) {
        reported.push(`${ws?.url ?? "null"}: ${(err as Error).message}`);
      },
    },
  }, async (server, scope) => {
    const a = await scope.client(server.port, "/a");
    const b = await scope.client(server.port, "/b");
    await a.send("throw");
    await a.send("still there");
    assert.equal(await a.nextText(), "echo:still there");
    await b.send("hello");
    assert.equal(await b.nextText(), "echo:hello");

    const o = await scope.client(server.port, "/open-throws");
    await o.send("x");
    assert.equal(await o.nextText(), "echo:x");

    const l = await scope.client(server.port, "/listener-throws");
    await l.send("y");
    assert.equal(await l.nextText(), "echo:y");

    a.ws.ping("p");
    await waitFor(() => a.pongs.length === 1, 2_000, "pong despite a throwing ping handler");

    const c = await scope.client(server.port, "/close-throws");
    await c.close(1000);
    await waitFor(() => reported.length === 6, 2_000, "six reports");
    // The loop is alive and the other clients still get answers.
    await b.send("after");
    assert.equal(await b.nextText(), "echo:after");
    await a.send("after");
    assert.equal(await a.nextText(), "echo:after");
    assert.deepEqual(reported.toSorted(), [
      "/a: message failed on /a",
      "/a: ping failed",
      "/close-throws: close failed",
      "/listener-throws: listener failed",
      "/listener-throws: onmessage failed",
      "/open-throws: open failed",
    ]);
    assert.equal(server.manager.stats.callbackErrors, 6);
  });
});

serverTest("without an error handler a throwing callback goes to console.error", async (poller) => {
  const errors = await errorsPrinted(() =>
    withServer({
      poller,
      websocket: {
        open(ws) {
          ws.addEventListener("message", (ev) => {
            if ((ev as MessageEvent).data === "listener") throw new Error("listener boom");
          });
        },
        message(ws, data) {
          if (data === "throw") throw new Error("boom");
          ws.send(data as string);
        },
      },
    }, async (server, scope) => {
      const c = await scope.client(server.port);
      await c.send("throw");
      await c.send("listener");
      await c.send("ok");
      assert.equal(await c.nextText(), "listener");
      assert.equal(await c.nextText(), "ok");
      assert.equal(server.manager.stats.callbackErrors, 2);
    })
  );
  assert.deepEqual(errors.map((e) => e.message), ["boom", "listener boom"]);
});

serverTest("an error handler that throws is itself reported to the console", async (poller) => {
  const errors = await errorsPrinted(() =>
    withServer({
      poller,
      websocket: {
        message(ws, data) {
          if (data === "throw") throw new Error("first");
          ws.send(data as string);
        },
        error() {
          throw new Error("second");
        },
      },
    }, async (server, scope) => {
      const c = await scope.client(server.port);
      await c.send("throw");
      await c.send("ok");
      assert.equal(await c.nextText(), "ok");
    })
  );
  const messages = errors.map((e) => e.message);
  assert.ok(messages.includes("second"), `console.error got ${messages}`);
});

serverTest("heartbeats: a silent client is terminated, a ponging one survives", async (poller) => {
  const closes: string[] = [];
  await withServer({
    poller,
    pingInterval: 200,
    idleTimeout: 600,
    websocket: {
      close(ws, code) {
        closes.push(`${ws.url} ${code}`);
      },
    },
  }, async (server, scope) => {
    const silent = await scope.raw(server.port, "/silent");
    const started = performance.now();
    const alive = await scope.client(server.port, "/alive");
    await waitFor(() => closes.length === 1, 3_000, "the silent client terminated");
    const took = performance.now() - started;
    assert.deepEqual(closes, ["/silent 1006"]);
    assert.ok(took >= 550, `terminated after ${took.toFixed(0)} ms, before the idle timeout`);
    assert.equal(server.manager.stats.idleTimeouts, 1);
    // What the silent client got: pings, then the end of the stream.
    const frames = await silent.readUntilEof(2_000);
    assert.ok(silent.eof);
    assert.ok(frames.length >= 1);
    assert.ok(frames.every((f) => f.opcode === 0x9), "only pings");

    await delay(2_000 - (performance.now() - started));
    assert.equal(alive.closeInfo, null, "the ponging client is still open");
    assert.ok(alive.pings.length >= 2, `${alive.pings.length} pings in 2 s`);
    assert.equal(only(server).readyState, WebSocket.OPEN);
    assert.equal(server.manager.stats.idleTimeouts, 1);
    await alive.send("still here");
    assert.deepEqual(closes, ["/silent 1006"]);
  });
});

serverTest("close timeout: a peer that never answers the close is terminated", async (poller) => {
  const closes: string[] = [];
  let closedAt = 0;
  await withServer({
    poller,
    closeTimeout: 300,
    pingInterval: 0,
    idleTimeout: 0,
    websocket: {
      close(_ws, code, reason) {
        closedAt = performance.now();
        closes.push(`${code}:${reason}`);
      },
    },
  }, async (server, scope) => {
    const raw = await scope.raw(server.port);
    await waitFor(() => server.manager.size === 1, 2_000, "open");
    const ws = only(server);
    // Close from a timer while the loop sleeps: the deadline must count from now, not
    // from the loop's last wake-up.
    await delay(180);
    const started = performance.now();
    ws.close(1000, "bye");
    const frame = await raw.readFrame(2_000);
    assert.ok(frame !== null);
    assert.equal(frame.opcode, 0x8);
    assert.deepEqual(parseClose(frame.payload), { code: 1000, reason: "bye" });
    await waitFor(() => closes.length === 1, 3_000, "terminated after the close timeout");
    const took = closedAt - started;
    assert.ok(took >= 295 && took < 1_500, `terminated after ${took.toFixed(0)} ms`);
    assert.equal(closes[0].split(":")[0], "1006");
    assert.equal(await raw.readFrame(2_000), null, "end of stream after the terminate");
    assert.equal(server.manager.stats.closedByCode[1006], 1);
  });
});
