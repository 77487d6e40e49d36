/**
 * Whether a PEM certificate and a PEM private key belong together: a
 * pair that does not fails only at a TLS handshake, with words that do not
 * name the files. Pure.
 *
 * @module
 */

import { createPrivateKey, X509Certificate } from "node:crypto";
import { errorMessage } from "../errors.ts";

/**
 * What is wrong with a certificate and key pair, or `undefined` when the
 * key is the certificate's.
 *
 * @param certificate PEM, the first certificate being the one the key is for.
 * @param key PEM private key.
 * @returns e.g. `the key does not belong to the certificate`.
 *
 * @example
 * ```ts
 * keyPairProblem(certPem, keyPem); // undefined when they match
 * ```
 */
export function keyPairProblem(
  certificate: string,
  key: string,
): string | undefined {
  try {
    return new X509Certificate(certificate).checkPrivateKey(
        createPrivateKey(key),
      )
      ? undefined
      : "the key does not belong to the certificate";
  } catch (error) {
    return `the certificate or key cannot be read: ${errorMessage(error)}`;
  }
}
