/**
 * The text of `--help`.
 *
 * @module
 */

import { DEFAULT_LOG_FILE } from "../observe/log.ts";

/** What `httptunneling --help` prints. */
export const USAGE =
  `httptunneling: TCP tunnels, direct or through HTTP CONNECT proxies

Usage:
  httptunneling run [CONFIG] [options]   serve every entry of CONFIG (default: tunnels.conf)
  httptunneling check CONFIG             validate CONFIG and print its entries
  httptunneling run -L [BIND:]PORT:HOST:HOSTPORT [--proxy URL ...]   one-off forwards, like ssh -L
  httptunneling stdio HOST PORT [--proxy URL ...] [-v]   stdin/stdout to HOST:PORT (ssh ProxyCommand)
  httptunneling probe CONFIG | probe HOST PORT [--proxy URL ...] [--json]   check routes, explain failures
  httptunneling status [ADDR] [--watch]  entries and live tunnels of a tool run with --status
  httptunneling --help | --version

Config lines:
  <source> <destination host> <destination port> [<route>] [key=value ...]
  <route>: <proxy host> <proxy port> | <hop> [<hop> ...] | direct | env
  <hop>:   <proxy URL>[,<alternative URL> ...]   (http://, https://, socks5://, socks5h://, with user:pass@)
  A bare source port listens on 127.0.0.1 only; write 0.0.0.0:PORT or [::]:PORT to open it to the network.

run options:
  --log FILE               log file (default: ${DEFAULT_LOG_FILE}); "-" logs to stderr only
  --log-level LEVEL        debug, info, warning or error (default: info)
  --connect-timeout D      TCP connect limit (default: 10s)
  --handshake-timeout D    proxy CONNECT exchange limit (default: 10s)
  --idle-timeout D         close tunnels where nothing moves for D (default: off)
  --linger-timeout D       close half-closed tunnels where nothing moves for D (default: 2m)
  --drain-timeout D        how long tunnels of a removed entry may go on (default: no limit)
  --max-connections N      most tunnels open at once over all entries (default: no limit)
  --shutdown-timeout D     how long live tunnels may finish after SIGINT/SIGTERM (default: 10s)
  --ca-file FILE           PEM certificates to trust for https:// proxies, besides the system's
  --failover-backoff D     how long a failed proxy is skipped at first; doubles up to 5m (default: 5s)
  --status ADDR            serve GET /status (JSON) and /metrics (Prometheus) on ADDR, e.g. 127.0.0.1:9191
  --log-format F           text (default) or json (one JSON object per line)
  --log-max-size SIZE      rotate the log file at SIZE (e.g. 10M); keeps --log-files N files (default 5)
  --workers N              N threads share the ports (SO_REUSEPORT, Linux); limits are split between them (default: 1)
  Durations: 10 (seconds), 500ms, 10s, 2m, 1h.
  Entries override these with key=value options: connect-timeout, handshake-timeout,
  idle-timeout, linger-timeout, drain-timeout, max-connections, keepalive=on|off.

Exit status: 0 success, 1 config errors or a fatal error, 2 wrong command line.
`;
