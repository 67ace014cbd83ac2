declare module 'portcullis:plugin/types@0.1.0' {
  /**
   * A header field: name (lowercase) and value. Repeated fields (`set-cookie`, `via`)
   * appear once per value, in the order received.
   */
  export type Header = [string, string];
  /**
   * Who made the request, as established by an authentication plugin. Later plugins,
   * rate-limit keys, headers to the upstream and the access log read it.
   */
  export interface Identity {
    /**
     * The authenticated subject, such as a JWT `sub`.
     */
    subject?: string,
    /**
     * The consumer (application, API key owner) the request is made for.
     */
    consumer?: string,
    /**
     * Granted scopes (OAuth `scope` / `scp`).
     */
    scopes: Array<string>,
    /**
     * Consumer groups, for authorization by group.
     */
    groups: Array<string>,
    /**
     * Further verified claims, each value as JSON text (`"\"admin\""`, `"42"`).
     */
    claims: Array<[string, string]>,
  }
  /**
   * An answer produced by a plugin instead of calling the upstream.
   */
  export interface Reply {
    /**
     * HTTP status code, 100–599.
     */
    status: number,
    /**
     * Response headers; repeated names are kept.
     */
    headers: Array<Header>,
    /**
     * Response body, sent as is.
     */
    body: Uint8Array,
  }
  /**
   * What `on-request` decided.
   */
  export type Action = ActionContinue | ActionRespond;
  /**
   * Go on to the next plugin, then the upstream, with any edits made.
   */
  export interface ActionContinue {
    tag: 'continue',
  }
  /**
   * Answer the client with this reply; later plugins and the upstream are skipped,
   * and the response phase of earlier plugins still runs.
   */
  export interface ActionRespond {
    tag: 'respond',
    val: Reply,
  }
  /**
   * What a plugin asks of the gateway, returned by `check-config` once per load.
   */
  export interface Phases {
    /**
     * Call `on-request` for each request.
     */
    onRequest?: boolean,
    /**
     * Call `on-response` for each response (also for a reply of a later plugin).
     * The same instance serves both phases of one request, so a plugin may keep what
     * it learnt in the request phase in memory until the response phase.
     */
    onResponse?: boolean,
    /**
     * Buffer the request body (up to the entry's `body_bytes` budget) before
     * `on-request`, so `request.body` returns it; larger bodies are answered 413.
     */
    requestBody?: boolean,
    /**
     * Buffer the response body (up to the same budget) before `on-response`.
     */
    responseBody?: boolean,
  }
  /**
   * Why an edit was refused. The request or response is left as it was.
   */
  export type EditError = EditErrorInvalidName | EditErrorInvalidValue | EditErrorForbidden | EditErrorBodyNotBuffered | EditErrorBodyTooLarge;
  /**
   * The header name is not a valid HTTP field name.
   */
  export interface EditErrorInvalidName {
    tag: 'invalid-name',
    val: string,
  }
  /**
   * The value is not a valid HTTP field value (control characters, newlines).
   */
  export interface EditErrorInvalidValue {
    tag: 'invalid-value',
    val: string,
  }
  /**
   * The header may not be changed by plugins (`host`, `content-length`,
   * `transfer-encoding`, `connection` and the other hop-by-hop fields).
   */
  export interface EditErrorForbidden {
    tag: 'forbidden',
    val: string,
  }
  /**
   * The body was not buffered for this plugin: ask for `request-body` or
   * `response-body` in the phases.
   */
  export interface EditErrorBodyNotBuffered {
    tag: 'body-not-buffered',
  }
  /**
   * The new body is larger than the entry's `body_bytes` budget.
   */
  export interface EditErrorBodyTooLarge {
    tag: 'body-too-large',
    val: bigint,
  }
  
  export class Request implements Disposable {
    /**
     * This type does not have a public constructor.
     */
    private constructor();
    /**
    * The method, such as `GET`.
    */
    method(): string;
    /**
    * Replace the method (a valid HTTP token).
    */
    setMethod(method: string): void;
    /**
    * The path, percent-encoded as received (after the route's rewrite), without query.
    */
    path(): string;
    /**
    * Replace the path; must start with `/`.
    */
    setPath(path: string): void;
    /**
    * The raw query string without `?`, if any.
    */
    query(): string | undefined;
    /**
    * Replace or remove the query string.
    */
    setQuery(query: string | undefined): void;
    /**
    * The first value of a header, if present. Names are case-insensitive.
    */
    header(name: string): string | undefined;
    /**
    * Every value of a header, in order.
    */
    headerAll(name: string): Array<string>;
    /**
    * Every header field, in order. Costs a copy of all headers: prefer `header`.
    */
    headers(): Array<Header>;
    /**
    * Replace every value of a header with one value.
    */
    setHeader(name: string, value: string): void;
    /**
    * Add a value, keeping existing ones.
    */
    appendHeader(name: string, value: string): void;
    /**
    * Remove every value of a header. Removing an absent header is not an error.
    */
    removeHeader(name: string): void;
    /**
    * The buffered body, if the plugin asked for `request-body`.
    */
    body(): Uint8Array | undefined;
    /**
    * Replace the body; `content-length` is set by the gateway.
    */
    setBody(body: Uint8Array): void;
    /**
    * The client's address as the gateway determined it (trusted proxies applied).
    */
    clientIp(): string;
    /**
    * The name of the matched route.
    */
    route(): string;
    /**
    * The request id, also sent upstream and to the client as `x-request-id`.
    */
    requestId(): string;
    /**
    * The identity attached by an earlier plugin, if any.
    */
    identity(): Identity | undefined;
    /**
    * Attach (or replace) the verified identity of this request.
    */
    setIdentity(identity: Identity): void;
    [Symbol.dispose](): void;
  }
  
  export class Response implements Disposable {
    /**
     * This type does not have a public constructor.
     */
    private constructor();
    /**
    * The status code.
    */
    status(): number;
    /**
    * Replace the status code (100–599).
    */
    setStatus(status: number): void;
    /**
    * The first value of a header, if present.
    */
    header(name: string): string | undefined;
    /**
    * Every value of a header, in order.
    */
    headerAll(name: string): Array<string>;
    /**
    * Every header field, in order.
    */
    headers(): Array<Header>;
    /**
    * Replace every value of a header with one value.
    */
    setHeader(name: string, value: string): void;
    /**
    * Add a value, keeping existing ones.
    */
    appendHeader(name: string, value: string): void;
    /**
    * Remove every value of a header.
    */
    removeHeader(name: string): void;
    /**
    * The buffered body, if the plugin asked for `response-body`.
    */
    body(): Uint8Array | undefined;
    /**
    * Replace the body; `content-length` is set by the gateway.
    */
    setBody(body: Uint8Array): void;
    /**
    * The identity attached to the request, if any.
    */
    identity(): Identity | undefined;
    [Symbol.dispose](): void;
  }
}
