/// <reference path="./portcullis-plugin-types.d.ts" />
declare module 'portcullis:plugin/outbound-http@0.1.0' {
  /**
   * Send a request and wait for the whole response.
   */
  export function send(request: OutgoingRequest): IncomingResponse;
  export type Header = import('portcullis:plugin/types@0.1.0').Header;
  /**
   * A request to send.
   */
  export interface OutgoingRequest {
    /**
     * Method, such as `GET` or `POST`.
     */
    method: string,
    /**
     * Absolute `http://` or `https://` URL; its host must be granted.
     */
    url: string,
    headers: Array<Header>,
    body: Uint8Array,
    /**
     * Give up after this many milliseconds (and never after the plugin's deadline).
     */
    timeoutMillis?: number,
  }
  /**
   * The answer received. Bodies are read up to the entry's `body_bytes` budget.
   */
  export interface IncomingResponse {
    status: number,
    headers: Array<Header>,
    body: Uint8Array,
  }
  /**
   * Why no response came back.
   */
  export type HttpError = HttpErrorHostNotGranted | HttpErrorBudgetExhausted | HttpErrorInvalidRequest | HttpErrorTimeout | HttpErrorTransport | HttpErrorBodyTooLarge;
  /**
   * The URL's host is not listed in `grants.http`.
   */
  export interface HttpErrorHostNotGranted {
    tag: 'host-not-granted',
    val: string,
  }
  /**
   * This request used up its `budgets.outbound_calls`.
   */
  export interface HttpErrorBudgetExhausted {
    tag: 'budget-exhausted',
  }
  /**
   * The URL or a header could not be used.
   */
  export interface HttpErrorInvalidRequest {
    tag: 'invalid-request',
    val: string,
  }
  /**
   * No answer within the timeout.
   */
  export interface HttpErrorTimeout {
    tag: 'timeout',
  }
  /**
   * Connection, TLS or protocol failure.
   */
  export interface HttpErrorTransport {
    tag: 'transport',
    val: string,
  }
  /**
   * The response body is larger than the entry's `body_bytes` budget.
   */
  export interface HttpErrorBodyTooLarge {
    tag: 'body-too-large',
  }
}
