declare module 'portcullis:plugin/cache@0.1.0' {
  /**
   * The value stored under `key`, if present and not expired.
   */
  export function get(key: string): Uint8Array | undefined;
  /**
   * Store a value for `ttl-millis` milliseconds (at most one day).
   */
  export function set(key: string, value: Uint8Array, ttlMillis: number): void;
  /**
   * Remove a value; removing an absent key is not an error.
   */
  export { _delete as delete };
  function _delete(key: string): void;
}
