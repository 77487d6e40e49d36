/**
 * `stdio HOST PORT [--proxy URL ...]`: joins stdin and stdout to HOST:PORT,
 * for ssh's ProxyCommand and git's core.sshCommand. Only tunnel bytes go to
 * stdout; diagnostics go to stderr, on failure or with `-v`.
 *
 * @module
 */

import { closeQuietly, type Duplex } from "../net/duplex.ts";
import { errorMessage, UsageError } from "../errors.ts";
import { logger, setupLogging } from "../observe/log.ts";
import { relay } from "../relay.ts";
import { dialRoute } from "../route/dial.ts";
import { SessionPool } from "../route/session_pool.ts";
import { ProxyHealth } from "../route/health.ts";
import { PacEngines } from "../route/pac/engine.ts";
import { describeRoute } from "../route/types.ts";
import type { ChainStep } from "../route/chain.ts";
import { diagnose, failurePlace } from "../probe/diagnose.ts";
import { formatHostPort } from "../net/address.ts";
import { formatDuration } from "../time/duration.ts";
import { parseCommandLine, proxyEnvironment } from "./args.ts";
import { parseDestination, parseRouteArguments } from "./entry_args.ts";
import { TUNNEL_FLAGS, tunnelOptionsFrom, VERBOSE_SWITCH } from "./flags.ts";

const log = logger("stdio");

/**
 * Standard input and output as one stream; "shutting down" closes stdout.
 * Closing ends a pending read of stdin at once: a read of a pipe or a
 * terminal cannot be cancelled, and without this a tunnel that a time
 * limit or a gone reader of stdout ended would wait for stdin's next byte.
 */
function stdio(): Duplex {
  const { promise: closed, resolve: close } = Promise.withResolvers<null>();
  return {
    read: (buffer) => Promise.race([Deno.stdin.read(buffer), closed]),
    write: (data) => Deno.stdout.write(data),
    closeWrite: () => Promise.resolve(closeQuietly(Deno.stdout)),
    close: () => {
      close(null);
      closeQuietly(Deno.stdout);
    },
  };
}

/** The flags `stdio` takes: its `--help` lists these. */
export const STDIO_FLAGS = {
  ...TUNNEL_FLAGS,
  [VERBOSE_SWITCH.flag]: { type: "boolean", short: VERBOSE_SWITCH.short },
} as const;

/**
 * Runs `stdio`.
 *
 * @param args The arguments after `stdio`.
 * @returns 0 when the tunnel ended normally, 1 when it could not be opened
 *   or failed.
 * @throws {UsageError} for a wrong command line.
 */
export async function stdioCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandLine(args, STDIO_FLAGS);
  if (positionals.length !== 2) {
    throw new UsageError(
      "stdio takes a host and a port: stdio ssh.example.com 22",
    );
  }
  const destination = parseDestination(positionals[0], positionals[1]);
  const route = parseRouteArguments(values.proxy);
  const options = tunnelOptionsFrom(values);
  const closeLog = await setupLogging({
    file: "-",
    level: values.verbose ? "info" : "warning",
    stderr: true,
  });
  try {
    const environment = proxyEnvironment((level, message) =>
      log[level](message)
    );
    log.info(
      `connecting to ${positionals[0]}:${positionals[1]} ${
        describeRoute(route)
      }`,
    );
    // One tunnel: its session resumes when the connection drops.
    const sessions = new SessionPool();
    let stream;
    // The last step begun is where a failure happened, for the advice.
    let last: ChainStep | undefined;
    const started = performance.now();
    const pac = new PacEngines({
      log: (level, message) => log[level === "warn" ? "warn" : "info"](message),
    });
    try {
      let path;
      ({ stream, path } = await dialRoute(route, destination, options, {
        health: new ProxyHealth(),
        environment,
        pac,
        sessions,
        onFailover: (message) => log.warn(message),
        hook: {
          step: (step, run) => {
            last = step;
            return run();
          },
        },
      }));
      log.info(
        `open -> ${formatHostPort(destination)} ${path} after ${
          formatDuration(performance.now() - started)
        }`,
      );
    } catch (error) {
      const failure = error instanceof Error ? error : new Error(String(error));
      log.error(
        `cannot open the tunnel: ${errorMessage(error)}; ${
          diagnose(failure, failurePlace(last, destination))
        }`,
      );
      await sessions.close();
      return 1;
    } finally {
      // One connection: the PAC is not needed once it is open.
      await pac.close();
    }
    const result = await relay(stdio(), stream, {
      idleTimeoutMs: options.idleTimeoutMs,
      lingerTimeoutMs: options.lingerTimeoutMs,
    }).finally(() => sessions.close());
    if (result.error) {
      log.error(`the tunnel failed: ${result.error.message}`);
      return 1;
    }
    log.info(
      `closed: ${result.bytesUp} bytes up, ${result.bytesDown} bytes down`,
    );
    return 0;
  } finally {
    await closeLog();
  }
}
