/**
 * The text of `--help`; its options part is generated from the option
 * table.
 *
 * @module
 */

import { TUNNEL_OPTION_ROWS } from "../config/options.ts";
import {
  FORWARD_SWITCH,
  JSON_SWITCH,
  PROXY_SWITCH,
  RUN_OPTIONS,
  type Switch,
  switchLine,
  TO_SWITCH,
  usageLine,
  VERBOSE_SWITCH,
  WATCH_SWITCH,
  WIDE_SWITCH,
} from "./flags.ts";
import { SERVE_USAGE_LINES } from "./serve.ts";
import { DEFAULT_STATUS_ADDRESS } from "./status.ts";

/**
 * Where an option's help starts: two spaces after a flag and its
 * placeholder; a longer one has its help on the next line.
 */
const HELP_COLUMN = 28;

/** Lines of prose end by this column. */
const TEXT_WIDTH = 88;

/** One line per option of `run`, its help aligned. */
const OPTION_LINES = optionLines(
  RUN_OPTIONS.flatMap((option) => usageLine(option) ?? []),
);

/** The tunnel settings an entry may write as `key=value` (files aside). */
const ENTRY_SETTINGS = TUNNEL_OPTION_ROWS.filter((option) => !option.type.file)
  .map(({ key, type }) =>
    type.choices ? `${key}=${type.choices.join("|")}` : key
  ).join(", ");

/**
 * Options as help lines: the flag, then its help from {@link HELP_COLUMN},
 * wrapped there.
 */
function optionLines(
  options: readonly { name: string; help: string }[],
): string {
  const indent = " ".repeat(HELP_COLUMN);
  return options.map(({ name, help }) => {
    const flag = `  ${name}`;
    const text = wrap(help, indent);
    return flag.length + 2 <= HELP_COLUMN
      ? flag.padEnd(HELP_COLUMN) + text.slice(HELP_COLUMN)
      : `${flag}\n${text}`;
  }).join("\n");
}

/** Breaks prose into indented lines that end by {@link TEXT_WIDTH}. */
function wrap(text: string, indent = "  "): string {
  const lines: string[] = [];
  let line = indent;
  // "(default: 10s)" is not broken between its words.
  for (const word of text.split(/(?<!\(default:) /)) {
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
  httptunneling check [CONFIG]           validate CONFIG (default as for run) and print its entries
  httptunneling run -L [BIND:]PORT:HOST:HOSTPORT [--proxy URL ...]   one-off forwards, like ssh -L
  httptunneling stdio HOST PORT [--proxy URL ...] [-v]   stdin/stdout to HOST:PORT (ssh ProxyCommand)
  httptunneling probe [CONFIG] [--to HOST:PORT] | probe HOST PORT [--proxy URL ...] [--json]   check routes, explain failures
  httptunneling status [ADDR] [--watch | --json] [--wide]   entries, proxies and live tunnels of a tool run with --status
  httptunneling serve --tokens FILE --allow RULES [options]   the far end of ws:// and wss:// hops
  httptunneling pac FILE|URL|auto HOST [PORT]   what a PAC file answers for HOST (like pactester)
  httptunneling --help | --version
  httptunneling <command> --help   that command's usage, options and defaults (also: help <command>)

Config lines:
  <source> <destination host> <destination port> [<route>] [key=value ...]
  <route>: <proxy host> <proxy port> | <hop> [<hop> ...] | direct | env | pac=FILE|URL|auto
  <hop>:   <proxy URL>[,<alternative URL> ...]   (http://, https://, socks5://, socks5h://, with user:pass@;
           ws://, wss:// with token=)
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

/** The tunnel options `stdio` and `probe` take, as help lines. */
const TUNNEL_LINES = TUNNEL_OPTION_ROWS.filter((option) => !option.runOnly)
  .flatMap((option) => usageLine(option) ?? []);

/** What `<command> --help` says about one subcommand. */
interface CommandHelp {
  /** How it is called: one line, or one per way of calling it. */
  readonly synopsis: string | readonly string[];
  /** What it does, one sentence. */
  readonly about: string;
  /** Its options, from the option table and its switches. */
  readonly options: readonly { name: string; help: string }[];
}

const lines = (switches: readonly Switch[]) => switches.map(switchLine);

const COMMANDS: Readonly<Record<string, CommandHelp>> = {
  run: {
    synopsis: "httptunneling run [CONFIG] [-L FORWARD ...] [options]",
    about:
      "Serves every entry of CONFIG (default: tunnels.conf, else tunnels.conf.example), reloading it when it changes.",
    options: [
      ...RUN_OPTIONS.flatMap((option) => usageLine(option) ?? []),
      ...lines([FORWARD_SWITCH, PROXY_SWITCH]),
    ],
  },
  check: {
    synopsis: "httptunneling check [CONFIG]",
    about:
      "Validates CONFIG (default: the file run would read) and prints its entries; each error as file:line:column.",
    options: [],
  },
  stdio: {
    synopsis: "httptunneling stdio HOST PORT [--proxy URL ...] [options]",
    about:
      "Joins stdin and stdout to HOST:PORT along the route, for ssh's ProxyCommand.",
    options: [...lines([PROXY_SWITCH, VERBOSE_SWITCH]), ...TUNNEL_LINES],
  },
  probe: {
    synopsis: [
      "httptunneling probe [CONFIG] [--to HOST:PORT] [options]",
      "httptunneling probe HOST PORT [--proxy URL ...] [options]",
    ],
    about:
      "Walks each route step by step, timing each, and explains the first failure. Without CONFIG and HOST PORT, the routes of the file run would read (tunnels.conf, else tunnels.conf.example).",
    options: [
      ...lines([PROXY_SWITCH, TO_SWITCH, JSON_SWITCH]),
      ...TUNNEL_LINES,
    ],
  },
  pac: {
    synopsis: "httptunneling pac FILE|URL|auto HOST [PORT]",
    about:
      "Prints what the PAC file answers for HOST, as the tool would ask it: for HOST PORT a tunnel's URL https://HOST:PORT/, for HOST alone a plain request's URL http://HOST/.",
    options: [],
  },
  status: {
    synopsis: "httptunneling status [ADDR] [--watch | --json] [--wide]",
    about:
      `Shows the entries and live tunnels of a tool run with --status (default ADDR: ${DEFAULT_STATUS_ADDRESS}).`,
    options: lines([WATCH_SWITCH, JSON_SWITCH, WIDE_SWITCH]),
  },
  serve: {
    synopsis: [
      "httptunneling serve --tokens FILE --allow RULES [options]",
      "httptunneling serve --config FILE [options]",
    ],
    about:
      "Accepts tunnels over WebSocket or HTTP polling (protocols httptunneling.v1 and v2) from token holders and connects them to the targets the allow rules name; everything else gets a plain web server's answer.",
    options: SERVE_USAGE_LINES,
  },
};

/**
 * The text of `httptunneling <command> --help` (or `help <command>`).
 *
 * @param command A subcommand's name.
 * @returns Its help, or `undefined` for an unknown command.
 */
export function commandUsage(command: string): string | undefined {
  const help = COMMANDS[command];
  if (help === undefined) return undefined;
  return [
    `Usage: ${[help.synopsis].flat().join("\n       ")}`,
    "",
    wrap(help.about, ""),
    ...(help.options.length ? ["", "Options:", optionLines(help.options)] : []),
    "",
  ].join("\n");
}
