/// <reference path="./portcullis-plugin-types.d.ts" />
declare module 'portcullis:plugin/handler@0.1.0' {
  /**
   * Check this entry's configuration (JSON text of its TOML `config` table) and say which
   * phases the plugin needs. Called once per entry when the gateway loads or validates
   * its configuration; an error fails the load with this message, naming the route and
   * the plugin.
   */
  export function checkConfig(config: string): Phases;
  /**
   * The request phase, in pipeline order, before the upstream is called. Return
   * `continue` (with any edits made through `request`) or `respond`. An error is a
   * plugin failure: the entry's failure policy decides what the client gets.
   * 
   * The handle is owned rather than borrowed because guests whose handles are freed by a
   * garbage collector (JavaScript on QuickJS) cannot promise to drop a borrow before
   * returning. It works only during this call; the gateway keeps the request itself.
   */
  export function onRequest(request: Request): Action;
  /**
   * The response phase, in reverse pipeline order, for plugins that asked for it. The
   * handle works only during this call.
   */
  export function onResponse(response: Response): void;
  export type Request = import('portcullis:plugin/types@0.1.0').Request;
  export type Response = import('portcullis:plugin/types@0.1.0').Response;
  export type Action = import('portcullis:plugin/types@0.1.0').Action;
  export type Phases = import('portcullis:plugin/types@0.1.0').Phases;
}
