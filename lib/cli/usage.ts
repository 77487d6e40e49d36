/**
 * The text of `--help`; its options part is generated from the option
 * table.
 *
 * @module
 */

import { TUNNEL_OPTION_ROWS } from "../config/options.ts";
import { RUN_OPTIONS, usageLine } from "./flags.ts";

/** Where an option's help starts: after the longest flag and its placeholder. */
const FLAG_WIDTH = 25;

/** Lines of prose end by this column. */
const TEXT_WIDTH = 88;

/** One line per option of `run`, its help aligned. */
const OPTION_LINES = RUN_OPTIONS.flatMap((option) => usageLine(option) ?? [])
  .map(({ name, help }) => `  ${name.padEnd(FLAG_WIDTH)}${help}`).join("\n");

/** The tunnel settings an entry may write as `key=value` (files aside). */
const ENTRY_SETTINGS = TUNNEL_OPTION_ROWS.filter((option) => !option.type.file)
  .map(({ key, type }) =>
    type.choices ? `${key}=${type.choices.join("|")}` : key
  ).join(", ");

/** Breaks prose into indented lines that end by {@link TEXT_WIDTH}. */
function wrap(text: string, indent = "  "): string {
  const lines: string[] = [];
  let line = indent;
  for (const word of text.split(" ")) {
    if (line !== indent && line.length + 1 + word.length > TEXT_WIDTH) {
      lines.push(line);
      line = indent;
    }
    line += line === indent ? word : ` ${word}`;
  }
  return [...lines, line].join("\n");
}

/** What `httptunneling --help` prints. */
export const USAGE =
  `httptunneling: TCP tunnels, direct or through HTTP CONNECT proxies

Usage:
  httptunneling run [CONFIG] [options]   serve every entry of CONFIG (default: tunnels.conf)
  httptunneling check CONFIG             validate CONFIG and print its entries
  httptunneling run -L [BIND:]PORT:HOST:HOSTPORT [--proxy URL ...]   one-off forwards, like ssh -L
  httptunneling stdio HOST PORT [--proxy URL ...] [-v]   stdin/stdout to HOST:PORT (ssh ProxyCommand)
  httptunneling probe CONFIG [--to HOST:PORT] | probe HOST PORT [--proxy URL ...] [--json]   check routes, explain failures
  httptunneling status [ADDR] [--watch]  entries and live tunnels of a tool run with --status
  httptunneling --help | --version

Config lines:
  <source> <destination host> <destination port> [<route>] [key=value ...]
  <route>: <proxy host> <proxy port> | <hop> [<hop> ...] | direct | env
  <hop>:   <proxy URL>[,<alternative URL> ...]   (http://, https://, socks5://, socks5h://, with user:pass@)
  <source> proxy [<route>] [key=value ...]   a local HTTP proxy (CONNECT and http:// requests)
  <source> socks [<route>] [key=value ...]   a local SOCKS5/SOCKS4a server
     with direct-for=PATTERN,... (go direct, NO_PROXY style), allow=CIDR,... (other clients
     than loopback), client-auth=USER:PASSWORD (clients must give these)
  A bare source port listens on 127.0.0.1 only; write 0.0.0.0:PORT or [::]:PORT to open it to the network.

run options:
${OPTION_LINES}
  Durations: 10 (seconds), 500ms, 10s, 2m, 1h.
${wrap(`Entries override these with key=value options: ${ENTRY_SETTINGS}.`)}

Exit status: 0 success, 1 config errors or a fatal error, 2 wrong command line.
`;
