// {{name}}: a Portcullis plugin in JavaScript (QuickJS or StarlingMonkey).
//
// Answers 400 when the request lacks the configured header, and marks the requests it lets
// through. Change it to what your plugin should do; README.md says how to build and test it.
import { definePlugin, problem } from "./portcullis.js";

export const handler = definePlugin({
  phases: { onRequest: true },
  configure(config) {
    const header = config.header ?? "x-tenant";
    if (typeof header !== "string" || header === "") throw new Error("`header` must be a header name");
    return { header };
  },
  onRequest(request, { header }) {
    if (request.header(header) === undefined) return problem(400, "Bad Request", `the ${header} header is required`);
    request.setHeader("x-{{name}}", "checked");
    console.log(`${header} present`);
  },
});
