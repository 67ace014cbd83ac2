// A probe for the gateway's tests: what a JavaScript plugin sees of its sandbox, and how
// its failures end, on QuickJS and StarlingMonkey alike. The `x-probe` request header says
// what to do.
import { definePlugin, problem } from "../../../../sdk/js/portcullis.js";

export const handler = definePlugin({
  configure: (config) => ({ tag: config.tag ?? "probe" }),
  onRequest(request, { tag }) {
    const what = request.header("x-probe") ?? "sample";
    switch (what) {
      case "pass":
        // Nothing: the cost of a call itself, for the benches.
        return;
      case "sample":
        // Random state and the clock, for the upstream to echo.
        request.setHeader("x-random", String(Math.random()));
        request.setHeader("x-wall-ms", String(Date.now()));
        request.setHeader("x-text", new TextDecoder().decode(new TextEncoder().encode("π ok")));
        request.setHeader("x-absent", String(request.header("x-nothing-here")));
        return;
      case "print":
        console.log(`${tag}: console.log from ${request.path()}`);
        return;
      case "deny":
        return problem(403, "Forbidden", "the probe was asked to deny");
      case "throw":
        throw new Error("the probe was asked to fail");
      case "spin":
        for (;;) {}
      case "grow": {
        const hoard = [];
        // Typed arrays take linear memory at once: the cap is met long before the deadline.
        for (;;) hoard.push(new Uint8Array(4 << 20).fill(hoard.length));
      }
      default:
        throw new TypeError(`unknown probe ${what}`);
    }
  },
});
