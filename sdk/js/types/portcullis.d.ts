// Declarations of the SDK module (`portcullis.js`), written by hand over the contract's
// declarations beside it, which `sdk/js/gen-types` generates from wit/ (never edit those).
/// <reference path="./plugin-full.d.ts" />

import type { Identity, Reply, Header } from "portcullis:plugin/types@0.1.0";
import type { Level } from "portcullis:plugin/host@0.1.0";

export type { Identity, Reply, Header, Level };

/** What a plugin asks of the gateway. Absent flags are false; the default is `{ onRequest: true }`. */
export interface Phases {
  onRequest?: boolean;
  onResponse?: boolean;
  requestBody?: boolean;
  responseBody?: boolean;
}

declare class Message {
  /** The first value of a header, or `undefined`. Names are case-insensitive. */
  header(name: string): string | undefined;
  headerAll(name: string): string[];
  /** Every header field: costs a copy, prefer `header`. */
  headers(): Header[];
  /** Throws an Error naming the refusal (forbidden header, invalid value). */
  setHeader(name: string, value: string | number): void;
  appendHeader(name: string, value: string | number): void;
  removeHeader(name: string): void;
  /** The buffered body, or `undefined` when the phases did not ask for it. */
  body(): Uint8Array | undefined;
  text(): string | undefined;
  /** Throws a SyntaxError when the body is not JSON. */
  json(): unknown;
  /** A string, bytes, or any other value written as JSON. */
  setBody(body: string | Uint8Array | number[] | object): void;
  identity(): Identity | undefined;
}

export declare class Request extends Message {
  method(): string;
  setMethod(method: string): void;
  /** Percent-encoded as received (after the route's rewrite), without the query. */
  path(): string;
  setPath(path: string): void;
  query(): string | undefined;
  setQuery(query: string | undefined): void;
  clientIp(): string;
  route(): string;
  requestId(): string;
  setIdentity(identity: Partial<Identity>): void;
}

export declare class Response extends Message {
  status(): number;
  setStatus(status: number): void;
}

export interface Plugin<Config> {
  phases?: Phases;
  /** Check the entry's config (parsed JSON) and return what the other calls get; throw to refuse it. */
  configure?(config: any): Config;
  /** Return nothing to continue, or a reply to answer the client. */
  onRequest?(request: Request, config: Config): Reply | undefined | void;
  onResponse?(response: Response, config: Config): void;
}

/** The `handler` object a plugin module exports. */
export declare function definePlugin<Config>(plugin: Plugin<Config>): typeof import("portcullis:plugin/handler@0.1.0");

export declare function reply(status: number, body?: string | Uint8Array, headers?: Header[]): Reply;
/** RFC 9457 problem+json shaped like the gateway's own: `type` is
 * `urn:portcullis:problem:<kind>` (`kind` defaults to the title in lower case, words joined
 * by `-`), with the request id when made in `onRequest`, and `cache-control: no-store`.
 * Never put client input or secrets in `detail`. */
export declare function problem(
  status: number,
  title: string,
  detail?: string,
  headers?: Header[],
  options?: { kind?: string },
): Reply;
export declare function log(level: Level, ...args: unknown[]): void;
export declare function count(name: string, delta?: number): void;
export declare function nowMillis(): number;
export declare function encode(text: string): Uint8Array;
export declare function decode(bytes: Uint8Array): string;
