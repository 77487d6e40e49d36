/**
 * The tool's name and version, from `deno.json`.
 *
 * @module
 */

import manifest from "../deno.json" with { type: "json" };

/** The tool's version, e.g. `0.1.0`. */
export const VERSION: string = manifest.version;

/** The `User-Agent` sent to proxies, e.g. `httptunneling/0.1.0`. */
export const USER_AGENT = `httptunneling/${VERSION}`;
