declare module 'portcullis:plugin/host@0.1.0' {
  /**
   * This pipeline entry's `config` table from the gateway's TOML, as JSON text. The same
   * text `check-config` accepted.
   */
  export function config(): string;
  /**
   * Wall-clock time, milliseconds since the Unix epoch (for `exp`/`nbf` checks and the
   * like: plugins have no other clock).
   */
  export function nowMillis(): bigint;
  /**
   * `len` bytes (at most 256) from the gateway's cryptographic random generator: seeds
   * for hash maps (HashDoS resistance), nonces. Plugins have no other source of entropy.
   */
  export function randomBytes(len: number): Uint8Array;
  /**
   * Write a line to the gateway's operations log, tagged with the route, the plugin and
   * the request id. Never log secrets: the gateway cannot tell them apart.
   */
  export function log(level: Level, message: string): void;
  /**
   * Add to a counter exported with the gateway's metrics, labelled with the route and
   * the plugin: `portcullis_plugin_events_total{name=...}`. Names are
   * `[a-z0-9_]`, at most 64 characters; others are ignored.
   */
  export function count(name: string, delta: bigint): void;
  /**
   * Severity of a log line.
   * # Variants
   * 
   * ## `"trace"`
   * 
   * ## `"debug"`
   * 
   * ## `"info"`
   * 
   * ## `"warn"`
   * 
   * ## `"error"`
   */
  export type Level = 'trace' | 'debug' | 'info' | 'warn' | 'error';
}
