declare module 'portcullis:plugin/crypto@0.1.0' {
  /**
   * Verify a compact JWS (such as a JWT) against the keys of `keys`, accepting only the
   * algorithms in `allowed`. Embedded `jwk`, `jku` and `x5u` header parameters are never
   * trusted.
   */
  export function verifyJws(token: string, keys: KeySource, allowed: Array<Algorithm>): Verified;
  /**
   * JWS algorithms the gateway verifies. `none` is not one of them.
   * # Variants
   * 
   * ## `"hs256"`
   * 
   * ## `"hs384"`
   * 
   * ## `"hs512"`
   * 
   * ## `"rs256"`
   * 
   * ## `"rs384"`
   * 
   * ## `"rs512"`
   * 
   * ## `"ps256"`
   * 
   * ## `"ps384"`
   * 
   * ## `"ps512"`
   * 
   * ## `"es256"`
   * 
   * ## `"es384"`
   * 
   * ## `"eddsa"`
   */
  export type Algorithm = 'hs256' | 'hs384' | 'hs512' | 'rs256' | 'rs384' | 'rs512' | 'ps256' | 'ps384' | 'ps512' | 'es256' | 'es384' | 'eddsa';
  /**
   * Where the verification keys come from.
   */
  export type KeySource = KeySourceJwksUrl | KeySourceJwks | KeySourceSecret;
  /**
   * A JWKS document at this URL; its host must be granted in `grants.http`.
   */
  export interface KeySourceJwksUrl {
    tag: 'jwks-url',
    val: string,
  }
  /**
   * A JWKS document given inline (JSON text).
   */
  export interface KeySourceJwks {
    tag: 'jwks',
    val: string,
  }
  /**
   * A shared secret, for the HS* algorithms only.
   */
  export interface KeySourceSecret {
    tag: 'secret',
    val: Uint8Array,
  }
  /**
   * A token whose signature checked out.
   */
  export interface Verified {
    /**
     * The algorithm it was signed with (one of the allowed ones).
     */
    algorithm: Algorithm,
    /**
     * The key id of the key that verified it, if the token named one.
     */
    keyId?: string,
    /**
     * The protected header, as JSON text.
     */
    header: string,
    /**
     * The payload (claims), as JSON text. Its claims are not checked: `exp`, `nbf`,
     * `iss`, `aud` and scopes are the plugin's policy.
     */
    claims: string,
  }
  /**
   * Why a token was not verified.
   */
  export type VerifyError = VerifyErrorMalformed | VerifyErrorAlgorithmNotAllowed | VerifyErrorUnknownKey | VerifyErrorInvalidSignature | VerifyErrorUnsupportedCritical | VerifyErrorKeysUnavailable | VerifyErrorInvalidKeys;
  /**
   * Not a compact JWS, or its header or payload is not valid JSON.
   */
  export interface VerifyErrorMalformed {
    tag: 'malformed',
    val: string,
  }
  /**
   * The header's `alg` is not in the allowed list (or is `none`).
   */
  export interface VerifyErrorAlgorithmNotAllowed {
    tag: 'algorithm-not-allowed',
    val: string,
  }
  /**
   * No key in the key set matches the token's `kid` and algorithm, even after a refresh.
   */
  export interface VerifyErrorUnknownKey {
    tag: 'unknown-key',
    val: string | undefined,
  }
  /**
   * The signature does not match.
   */
  export interface VerifyErrorInvalidSignature {
    tag: 'invalid-signature',
  }
  /**
   * The header carries a `crit` parameter the gateway does not understand.
   */
  export interface VerifyErrorUnsupportedCritical {
    tag: 'unsupported-critical',
    val: string,
  }
  /**
   * The key set could not be fetched and none is cached.
   */
  export interface VerifyErrorKeysUnavailable {
    tag: 'keys-unavailable',
    val: string,
  }
  /**
   * The key source is unusable (not granted, bad JWKS text, secret for an
   * asymmetric algorithm).
   */
  export interface VerifyErrorInvalidKeys {
    tag: 'invalid-keys',
    val: string,
  }
}
