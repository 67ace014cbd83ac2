// Response redactor: a Portcullis plugin in JavaScript, one source for QuickJS
// (componentize-qjs) and StarlingMonkey (componentize-js).
//
// Masks the values of configured fields, at any depth, in JSON responses on their way to
// the client, so a backend that returns too much (a password hash, a card number) does not
// leak it through the gateway. Responses whose content type is not JSON pass untouched. A
// response that says it is JSON but does not parse is not passed on: the plugin cannot tell
// what it would leak, so the client gets 502.
//
// The request phase asks the upstream for JSON in one piece (`accept: application/json`,
// no `range`), so a client cannot pick a representation (XML, CSV, byte ranges) that this
// plugin would pass unread. Run it with the default `failure = "closed"`: under "open" or
// "skip", a body it fails on would go out unmasked.
//
// A masked answer is a new representation: its validators (`etag`, `content-digest`,
// `digest`, `content-md5`) are dropped rather than left to describe the upstream's bytes.
// Numbers are written back as JavaScript reads them: integers beyond 2^53 lose precision,
// so an API that sends such integers as JSON numbers needs a plugin that keeps the text.
//
// Config:
//   fields = ["password", "ssn", "card_number"]   # names to mask, compared case-insensitively
//   mask = "***"                                    # optional, the replacement value
import { definePlugin, problem } from "../../../sdk/js/portcullis.js";

// What describes the upstream's bytes, and no longer holds once they change.
const VALIDATORS = ["etag", "content-digest", "digest", "content-md5"];

const isJson = (type) => /^\s*application\/([\w.+-]*\+)?json\s*(;|$)/i.test(type);

function redact(value, fields, mask) {
  let masked = 0;
  const walk = (v) => {
    if (Array.isArray(v)) return v.map(walk);
    if (v === null || typeof v !== "object") return v;
    // Built from entries, so a `__proto__` member stays a member.
    return Object.fromEntries(
      Object.entries(v).map(([key, inner]) => {
        if (!fields.has(key.toLowerCase())) return [key, walk(inner)];
        masked++;
        return [key, mask];
      }),
    );
  };
  return { value: walk(value), masked };
}

export const handler = definePlugin({
  phases: { onRequest: true, onResponse: true, responseBody: true },

  configure(config) {
    const { fields, mask = "***" } = config;
    if (!Array.isArray(fields) || fields.length === 0 || !fields.every((f) => typeof f === "string" && f !== "")) {
      throw new Error("`fields` must be a non-empty list of field names");
    }
    if (typeof mask !== "string") throw new Error("`mask` must be a string");
    return { fields: new Set(fields.map((f) => f.toLowerCase())), mask };
  },

  onRequest(request) {
    request.setHeader("accept", "application/json");
    request.removeHeader("range");
  },

  onResponse(response, { fields, mask }) {
    // Any JSON type among the values counts: clients differ on which one they use.
    if (!response.headerAll("content-type").some(isJson)) return;
    const body = response.body();
    // A HEAD answer, a 204 or a 304 has nothing to mask.
    if (body === undefined || body.length === 0) return;
    let doc;
    try {
      doc = response.json();
    } catch {
      console.log("the upstream's JSON answer does not parse: refused");
      const refusal = problem(502, "Bad Gateway", "the upstream's answer could not be checked");
      response.setStatus(refusal.status);
      for (const [name, value] of refusal.headers) response.setHeader(name, value);
      for (const name of VALIDATORS) response.removeHeader(name);
      response.setBody(refusal.body);
      return;
    }
    if (doc === undefined) return;
    const { value, masked } = redact(doc, fields, mask);
    if (masked === 0) return;
    response.setBody(value);
    for (const name of VALIDATORS) response.removeHeader(name);
    response.setHeader("x-redacted", String(masked));
    console.log(`redacted ${masked} field(s)`);
  },
});
