// A tiny WebSocket client session API, the same in Node (with the `ws` package) and in a
// browser page (the native WebSocket): scripts/peers/peers.py drives it, one call at a time.
// Binary data crosses the JSON boundary as base64.
//
//   await femtowsPeer.open(url, protocols) -> {id, protocol, headers}
//                                           | {rejected: {status, headers, body}} | {error}
//   femtowsPeer.send(id, data, isBinary);  await femtowsPeer.recv(id, timeoutMs)
//     -> {type: "text", data} | {type: "bytes", data: base64} | {type: "close", code, reason}
//   femtowsPeer.close(id, code, reason);  femtowsPeer.sendRaw(id, base64)  (Node only)
//   femtowsPeer.abort(id)  (Node only: drop TCP)
(function () {
  const isNode = typeof process !== "undefined" && process.versions && process.versions.node;
  const WS = isNode ? require("ws") : WebSocket;
  const toB64 = (buf) => isNode ? Buffer.from(buf).toString("base64")
    : btoa(String.fromCharCode(...new Uint8Array(buf)));
  const fromB64 = (s) => isNode ? Buffer.from(s, "base64")
    : Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
  const conns = new Map();
  let nextId = 1;

  function push(st, item) {
    const waiter = st.waiters.shift();
    if (waiter) waiter(item); else st.queue.push(item);
  }

  globalThis.femtowsPeer = {
    open(url, protocols) {
      return new Promise((resolve) => {
        const ws = new WS(url, protocols || []);
        ws.binaryType = "arraybuffer";
        const st = { ws, queue: [], waiters: [], closed: null };
        let settled = false;
        const settle = (v) => { if (!settled) { settled = true; resolve(v); } };
        if (isNode) {
          ws.on("unexpected-response", (req, res) => {
            const chunks = [];
            res.on("data", (c) => chunks.push(c));
            res.on("end", () => {
              settle({ rejected: { status: res.statusCode, headers: res.headers,
                                   body: toB64(Buffer.concat(chunks)) } });
              req.destroy();
            });
          });
          ws.on("upgrade", (res) => { st.headers = res.headers; });
        }
        ws.onopen = () => {
          const id = nextId++;
          conns.set(id, st);
          settle({ id, protocol: ws.protocol, headers: st.headers || null });
        };
        ws.onmessage = (ev) => push(st, typeof ev.data === "string"
          ? { type: "text", data: ev.data } : { type: "bytes", data: toB64(ev.data) });
        ws.onclose = (ev) => {
          st.closed = { type: "close", code: ev.code, reason: ev.reason };
          push(st, st.closed);
          // A browser cannot see the status of a refused upgrade: it only gets 1006.
          settle({ rejected: { status: null, headers: {}, body: "" } });
        };
        ws.onerror = () => {};
      });
    },
    send(id, data, isBinary) {
      conns.get(id).ws.send(isBinary ? fromB64(data) : data);
      return true;
    },
    recv(id, timeoutMs) {
      const st = conns.get(id);
      if (st.queue.length) return Promise.resolve(st.queue.shift());
      if (st.closed) return Promise.resolve(st.closed);
      return new Promise((resolve) => {
        const timer = setTimeout(() => {
          const i = st.waiters.indexOf(done);
          if (i >= 0) st.waiters.splice(i, 1);
          resolve({ type: "timeout" });
        }, timeoutMs);
        const done = (item) => { clearTimeout(timer); resolve(item); };
        st.waiters.push(done);
      });
    },
    close(id, code, reason) {
      conns.get(id).ws.close(code, reason);
      return true;
    },
    sendRaw(id, b64) {
      conns.get(id).ws._socket.write(fromB64(b64));
      return true;
    },
    abort(id) {
      conns.get(id).ws.terminate();
      return true;
    },
    forget(id) { conns.delete(id); return true; },
  };
})();
