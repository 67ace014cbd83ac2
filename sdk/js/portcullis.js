// The Portcullis plugin SDK for JavaScript: one source for QuickJS (componentize-qjs) and
// StarlingMonkey (componentize-js).
//
// The two engines differ in small ways this module hides:
//   - an absent optional value is `null` on one and `undefined` on the other: every getter
//     here answers `undefined`;
//   - QuickJS built with --sync has no `console`, `TextEncoder` or `TextDecoder`: they are
//     provided (console.* becomes a log line tagged with route, plugin and request id);
//   - a thrown exception traps with a bare `unreachable` on one: every call is guarded, and
//     what was thrown becomes a plugin error carrying its message.
//
// A plugin (`plugin.js`) exports `handler`:
//
//   import { definePlugin, problem } from "./portcullis.js";
//   export const handler = definePlugin({
//     configure(config) { ... },               // check the entry's config (parsed JSON)
//     onRequest(request, config) {             // return nothing to continue,
//       if (request.header("x-deny") !== undefined)
//         return problem(403, "Forbidden", "x-deny is set");   // or a reply to answer
//     },
//   });
//
// See sdk/js/README.md for building, testing and what to avoid.

import * as host from "portcullis:plugin/host@0.1.0";

// --- What QuickJS --sync lacks ----------------------------------------------------------

/** UTF-8 bytes of a string. */
export function encode(text) {
  return utf8Encode(String(text));
}

/** A string from UTF-8 bytes (invalid sequences become U+FFFD). */
export function decode(bytes) {
  return utf8Decode(bytes ?? new Uint8Array(0));
}

function utf8Encode(text) {
  const out = [];
  for (let i = 0; i < text.length; i++) {
    let c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        i++;
      }
    }
    if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd;
    if (c < 0x80) out.push(c);
    else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 63));
    else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
    else out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
  }
  return new Uint8Array(out);
}

// The WHATWG decoder's algorithm, so invalid input decodes as TextDecoder would.
function utf8Decode(bytes) {
  const parts = [];
  let [needed, seen, point, lower, upper] = [0, 0, 0, 0x80, 0xbf];
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    if (needed === 0) {
      if (b <= 0x7f) parts.push(b);
      else if (b >= 0xc2 && b <= 0xdf) [needed, point] = [1, b & 0x1f];
      else if (b >= 0xe0 && b <= 0xef) {
        if (b === 0xe0) lower = 0xa0;
        if (b === 0xed) upper = 0x9f;
        [needed, point] = [2, b & 0xf];
      } else if (b >= 0xf0 && b <= 0xf4) {
        if (b === 0xf0) lower = 0x90;
        if (b === 0xf4) upper = 0x8f;
        [needed, point] = [3, b & 0x7];
      } else parts.push(0xfffd);
      continue;
    }
    if (b < lower || b > upper) {
      [needed, seen, point, lower, upper] = [0, 0, 0, 0x80, 0xbf];
      parts.push(0xfffd);
      i--;
      continue;
    }
    [lower, upper] = [0x80, 0xbf];
    point = (point << 6) | (b & 0x3f);
    if (++seen === needed) {
      parts.push(point);
      [needed, seen, point] = [0, 0, 0];
    }
  }
  if (needed !== 0) parts.push(0xfffd);
  let text = "";
  for (let i = 0; i < parts.length; i += 4096) text += String.fromCodePoint(...parts.slice(i, i + 4096));
  return text;
}

function format(args) {
  return args
    .map((a) => {
      if (typeof a === "string") return a;
      if (a instanceof Error) return `${a.name}: ${a.message}`;
      try {
        return JSON.stringify(a) ?? String(a);
      } catch {
        return String(a);
      }
    })
    .join(" ");
}

if (typeof globalThis.console === "undefined") {
  const line = (level) => (...args) => host.log(level, format(args));
  globalThis.console = {
    log: line("info"),
    info: line("info"),
    debug: line("debug"),
    warn: line("warn"),
    error: line("error"),
  };
}
if (typeof globalThis.TextEncoder === "undefined") {
  globalThis.TextEncoder = class TextEncoder {
    get encoding() {
      return "utf-8";
    }
    encode(text = "") {
      return utf8Encode(String(text));
    }
  };
}
function bodyBytesOf(input) {
  if (input instanceof Uint8Array) return input;
  if (input instanceof ArrayBuffer) return new Uint8Array(input);
  if (ArrayBuffer.isView(input)) return new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
  throw new TypeError("TextDecoder.decode takes bytes");
}

if (typeof globalThis.TextDecoder === "undefined") {
  globalThis.TextDecoder = class TextDecoder {
    constructor(label = "utf-8", options = {}) {
      if (!/^\s*(utf-?8|unicode-1-1-utf-8)\s*$/i.test(String(label))) {
        throw new RangeError(`TextDecoder: only UTF-8 is provided here, not ${label}`);
      }
      if (options.fatal) throw new TypeError("TextDecoder: `fatal` is not provided here");
    }
    get encoding() {
      return "utf-8";
    }
    decode(input) {
      const bytes = input === undefined ? new Uint8Array(0) : bodyBytesOf(input);
      // As the WHATWG decoder: a leading byte-order mark is not part of the text.
      const start = bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? 3 : 0;
      return utf8Decode(start ? bytes.subarray(start) : bytes);
    }
  };
}

// --- Random values ----------------------------------------------------------------------
//
// Both toolchains evaluate the module at build time and snapshot the engine, and the
// gateway snapshots again after `check-config`: QuickJS's Math.random state is then the same
// in every fresh instance. So Math.random draws from the gateway's CSPRNG
// (`host.random-bytes`) instead, through a pool emptied at the start of every call, so no
// value drawn before a snapshot is ever handed out after it.

let pool = new Uint8Array(0);
let used = 0;

function resetRandom() {
  pool = new Uint8Array(0);
  used = 0;
}

Math.random = function random() {
  if (used + 8 > pool.length) {
    pool = new Uint8Array(host.randomBytes(256));
    used = 0;
    if (pool.length < 8) throw new Error("the gateway gave too few random bytes");
  }
  // 53 random bits: the top 21 of one word and the 32 of the next, as V8 and SpiderMonkey do.
  let hi = 0;
  let lo = 0;
  for (let i = 0; i < 4; i++) hi = hi * 256 + pool[used + i];
  for (let i = 4; i < 8; i++) lo = lo * 256 + pool[used + i];
  used += 8;
  return ((hi >>> 11) * 4294967296 + lo) / 9007199254740992;
};

// --- Logging, metrics, clock ------------------------------------------------------------

/** A line in the gateway's log: level is "trace" | "debug" | "info" | "warn" | "error".
 * Never log secrets: the gateway cannot tell them apart. */
export function log(level, ...args) {
  host.log(level, format(args));
}

/** Add to `portcullis_plugin_events_total{name=...}` (names `[a-z0-9_]`, at most 64). */
export function count(name, delta = 1) {
  host.count(name, BigInt(delta));
}

/** Wall-clock milliseconds since the Unix epoch (`Date.now()` works too). */
export function nowMillis() {
  return Number(host.nowMillis());
}

// --- Replies ----------------------------------------------------------------------------

/** Bytes for a body: a string as UTF-8, bytes as they are, anything else as JSON. */
function bodyBytes(body) {
  if (typeof body === "string") return utf8Encode(body);
  if (body instanceof Uint8Array) return body;
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  if (ArrayBuffer.isView(body)) return new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
  const text = JSON.stringify(body);
  if (text === undefined) throw new TypeError("a body must be a string, bytes or a JSON value");
  return utf8Encode(text);
}

/** An answer to send instead of calling the upstream. `body` is a string, bytes, or a
 * value written as JSON. */
export function reply(status, body = "", headers = []) {
  const bytes = bodyBytes(body);
  return { status, headers: headers.map(([n, v]) => [String(n), String(v)]), body: bytes };
}

// The request being served, while `onRequest` runs: `problem` reads its id.
let serving = null;

/** An RFC 9457 problem+json answer shaped like the gateway's own: `type` is
 * `urn:portcullis:problem:<kind>` (`kind` defaults to the title in lower case, words joined
 * by `-`: "Bad Request" gives `bad-request`), with the request id when made in
 * `onRequest`, and `cache-control: no-store`. Never put client input or secrets in
 * `detail`. */
export function problem(status, title, detail, headers = [], { kind } = {}) {
  const slug = String(title).toLowerCase().split(/[^a-z0-9]+/).filter(Boolean).join("-");
  const doc = { type: `urn:portcullis:problem:${kind ?? (slug || "plugin")}`, title, status };
  if (detail !== undefined) doc.detail = detail;
  if (serving !== null) doc.request_id = serving.requestId();
  return reply(status, JSON.stringify(doc), [
    ["content-type", "application/problem+json"],
    ["cache-control", "no-store"],
    ...headers,
  ]);
}

// --- The request and the response -------------------------------------------------------

const opt = (value) => (value === null ? undefined : value);

function editError(e) {
  const payload = e && typeof e === "object" && "payload" in e ? e.payload : e;
  if (payload && typeof payload === "object" && "tag" in payload) {
    const what = payload.val === undefined || payload.val === null ? "" : `: ${payload.val}`;
    return new Error(`edit refused (${payload.tag}${what})`);
  }
  return e instanceof Error ? e : new Error(String(e));
}

function edit(call) {
  try {
    call();
  } catch (e) {
    throw editError(e);
  }
}

/** Methods both phases share: headers and body. */
class Message {
  constructor(raw) {
    this.raw = raw;
  }
  /** The first value of a header, or `undefined`. */
  header(name) {
    return opt(this.raw.header(name));
  }
  /** Every value of a header, in order. */
  headerAll(name) {
    return this.raw.headerAll(name);
  }
  /** Every header field as [name, value] pairs: costs a copy, prefer `header`. */
  headers() {
    return this.raw.headers();
  }
  setHeader(name, value) {
    edit(() => this.raw.setHeader(name, String(value)));
  }
  appendHeader(name, value) {
    edit(() => this.raw.appendHeader(name, String(value)));
  }
  removeHeader(name) {
    edit(() => this.raw.removeHeader(name));
  }
  /** The buffered body as bytes, or `undefined` when the phase did not ask for it. */
  body() {
    const body = opt(this.raw.body());
    return body === undefined ? undefined : new Uint8Array(body);
  }
  /** The buffered body as text (UTF-8), or `undefined`. */
  text() {
    const body = this.body();
    return body === undefined ? undefined : utf8Decode(body);
  }
  /** The buffered body parsed as JSON, or `undefined`; throws on invalid JSON. */
  json() {
    const text = this.text();
    return text === undefined ? undefined : JSON.parse(text);
  }
  /** Replace the body with a string, bytes, or a value written as JSON. */
  setBody(body) {
    const bytes = bodyBytes(body);
    edit(() => this.raw.setBody(bytes));
  }
  /** The identity attached to the request, or `undefined`. */
  identity() {
    return opt(this.raw.identity());
  }
}

export class Request extends Message {
  method() {
    return this.raw.method();
  }
  setMethod(method) {
    edit(() => this.raw.setMethod(method));
  }
  path() {
    return this.raw.path();
  }
  setPath(path) {
    edit(() => this.raw.setPath(path));
  }
  /** The raw query string without `?`, or `undefined`. */
  query() {
    return opt(this.raw.query());
  }
  setQuery(query) {
    edit(() => this.raw.setQuery(query ?? undefined));
  }
  clientIp() {
    return this.raw.clientIp();
  }
  route() {
    return this.raw.route();
  }
  requestId() {
    return this.raw.requestId();
  }
  /** Attach the verified identity: `{ subject, consumer, scopes, groups, claims }`, each
   * optional. Claim values are JSON text. */
  setIdentity({ subject, consumer, scopes = [], groups = [], claims = [] }) {
    edit(() =>
      this.raw.setIdentity({ subject: subject ?? undefined, consumer: consumer ?? undefined, scopes, groups, claims }),
    );
  }
}

export class Response extends Message {
  status() {
    return this.raw.status();
  }
  setStatus(status) {
    edit(() => this.raw.setStatus(status));
  }
}

// --- The exported handler ---------------------------------------------------------------

function describe(e) {
  if (e instanceof Error) {
    // The plugin's own place: the first frame outside this module.
    const frames = typeof e.stack === "string" ? e.stack.match(/[\w.-]+\.js:\d+/g) ?? [] : [];
    const frame = frames.find((f) => !f.startsWith("portcullis.js:"));
    const where = frame ? /([\w.-]+\.js):(\d+)/.exec(frame) : null;
    return `${e.name}: ${e.message}${where ? ` (${where[1]}:${where[2]})` : ""}`;
  }
  return typeof e === "string" ? e : format([e]);
}

/**
 * The `handler` export from a plugin's parts:
 *   phases:     { onRequest, onResponse, requestBody, responseBody } (default: onRequest)
 *   configure:  (config) => value kept as the plugin's config; throw to refuse the config
 *   onRequest:  (request, config) => nothing to continue, or a reply to answer
 *   onResponse: (response, config) => nothing
 */
export function definePlugin({ phases = { onRequest: true }, configure = (c) => c, onRequest, onResponse }) {
  let config;
  let ready = false;
  const load = (text) => {
    config = configure(JSON.parse(text));
    ready = true;
  };
  const guarded = (call, lazy = true) => {
    resetRandom();
    try {
      if (lazy && !ready) load(host.config());
      return call();
    } catch (e) {
      // Both engines turn a thrown string into the `err` of a result.
      throw describe(e);
    }
  };
  return {
    checkConfig(text) {
      ready = false;
      return guarded(() => {
        load(text);
        return {
          onRequest: Boolean(phases.onRequest),
          onResponse: Boolean(phases.onResponse),
          requestBody: Boolean(phases.requestBody),
          responseBody: Boolean(phases.responseBody),
        };
      }, false);
    },
    onRequest(raw) {
      return guarded(() => {
        serving = raw;
        let answer;
        try {
          answer = onRequest ? onRequest(new Request(raw), config) : undefined;
        } finally {
          // The handle is the host's for this call only.
          serving = null;
        }
        if (answer === undefined || answer === null) return { tag: "continue" };
        return { tag: "respond", val: answer };
      });
    },
    onResponse(raw) {
      guarded(() => {
        if (onResponse) onResponse(new Response(raw), config);
      });
    },
  };
}
