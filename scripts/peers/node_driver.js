// Evaluates JavaScript sent by scripts/peers/peers.py, one JSON line per call:
//   in:  {"id": 1, "js": "return 1 + 1"}      (the body of an async function)
//   out: {"id": 1, "ok": 2}  |  {"id": 1, "error": "..."}
// `require` (peers.py puts Debian's /usr/share/nodejs on NODE_PATH) and femtowsPeer (wsclient.js) are
// in scope. Exits when its standard input closes.
"use strict";
const path = require("path");
require(path.join(__dirname, "wsclient.js"));
const readline = require("readline");
const AsyncFunction = Object.getPrototypeOf(async function () {}).constructor;
const rl = readline.createInterface({ input: process.stdin });
rl.on("line", async (line) => {
  let msg;
  try { msg = JSON.parse(line); } catch (e) { return; }
  let out;
  try {
    const fn = new AsyncFunction("require", msg.js);
    out = { id: msg.id, ok: await fn(require) };
  } catch (e) {
    out = { id: msg.id, error: String(e && e.stack || e) };
  }
  process.stdout.write(JSON.stringify(out === undefined ? null : out) + "\n");
});
rl.on("close", () => process.exit(0));
