/**
 * The plain web server `serve` shows to everything that is not a tunnel:
 * 404, or files from `--site DIR`, so the endpoint looks like any web
 * site. A path is decoded, then refused when a segment is `..` or holds a
 * slash, backslash or NUL, and the file's real path (symlinks followed)
 * must lie inside DIR.
 *
 * @module
 */

import { extname, join, sep } from "node:path";

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".htm": "text/html; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".json": "application/json",
  ".txt": "text/plain; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".jpeg": "image/jpeg",
  ".gif": "image/gif",
  ".ico": "image/x-icon",
  ".webp": "image/webp",
  ".woff2": "font/woff2",
};

/** The answer to anything the site does not have. */
export function notFound(): Response {
  return new Response("404 Not Found\n", {
    status: 404,
    headers: { "content-type": "text/plain; charset=utf-8" },
  });
}

/**
 * The path segments of a request path, or `undefined` when the path could
 * leave the site's directory or cannot be decoded. Pure.
 *
 * @param pathname The URL's path, percent-encoded as received.
 * @returns The decoded segments (empty for `/`).
 *
 * @example
 * ```ts
 * sitePath("/docs/a%20b.html"); // ["docs", "a b.html"]
 * sitePath("/%2e%2e/etc/passwd"); // undefined
 * ```
 */
export function sitePath(pathname: string): string[] | undefined {
  const segments: string[] = [];
  for (const raw of pathname.split("/")) {
    if (raw === "") continue;
    let segment: string;
    try {
      segment = decodeURIComponent(raw);
    } catch {
      return undefined;
    }
    if (
      segment === "." || segment === ".." || /[\/\\\0]/.test(segment)
    ) {
      return undefined;
    }
    segments.push(segment);
  }
  return segments;
}

/**
 * Answers a request from the files under `root` (its real path): GET and
 * HEAD only, `index.html` for a directory, 404 for anything else.
 *
 * @param request The request.
 * @param root The site directory, already resolved with `Deno.realPath`.
 * @returns The response.
 */
export async function siteResponse(
  request: Request,
  root: string | undefined,
): Promise<Response> {
  if (root === undefined) return notFound();
  if (request.method !== "GET" && request.method !== "HEAD") {
    return new Response("405 Method Not Allowed\n", {
      status: 405,
      headers: { allow: "GET, HEAD", "content-type": "text/plain" },
    });
  }
  const segments = sitePath(new URL(request.url).pathname);
  if (segments === undefined) return notFound();
  let path = join(root, ...segments);
  try {
    let real = await Deno.realPath(path);
    if (real !== root && !real.startsWith(root + sep)) return notFound();
    if ((await Deno.stat(real)).isDirectory) {
      path = join(real, "index.html");
      real = await Deno.realPath(path);
      if (!real.startsWith(root + sep)) return notFound();
    }
    const info = await Deno.stat(real);
    if (!info.isFile) return notFound();
    const headers = {
      "content-type": TYPES[extname(real).toLowerCase()] ??
        "application/octet-stream",
      "content-length": String(info.size),
    };
    if (request.method === "HEAD") return new Response(null, { headers });
    const file = await Deno.open(real);
    return new Response(file.readable, { headers });
  } catch {
    return notFound();
  }
}
