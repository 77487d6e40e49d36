/**
 * httptunneling's command line: picks the subcommand and turns errors into
 * an `error:` line and an exit status.
 *
 * @module
 */

import { checkCommand } from "./lib/cli/check.ts";
import { pacCommand } from "./lib/cli/pac.ts";
import { probeCommand } from "./lib/cli/probe.ts";
import { runCommand } from "./lib/cli/run.ts";
import { serveCommand } from "./lib/cli/serve.ts";
import { statusCommand } from "./lib/cli/status.ts";
import { stdioCommand } from "./lib/cli/stdio.ts";
import { commandUsage, USAGE } from "./lib/cli/usage.ts";
import { PAC_SANDBOX_COMMAND, pacChildMain } from "./lib/route/pac/child.ts";
import { errorMessage, UsageError } from "./lib/errors.ts";
import { VERSION } from "./lib/version.ts";

const COMMANDS: Record<string, (args: string[]) => number | Promise<number>> = {
  run: runCommand,
  check: checkCommand,
  stdio: stdioCommand,
  probe: probeCommand,
  status: statusCommand,
  serve: serveCommand,
  pac: pacCommand,
  // Not in the usage: the PAC sandbox process a compiled binary starts.
  [PAC_SANDBOX_COMMAND]: pacChildMain,
};

/**
 * Runs the command line `args`.
 *
 * @param args The arguments, without the program name.
 * @returns The exit status: 0 success, 1 failure, 2 wrong command line.
 */
export async function main(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  // `run --help`, `help run`: the subcommand's own usage.
  const helpFor = command === "help"
    ? rest[0]
    : rest.includes("--help") || rest.includes("-h")
    ? command
    : undefined;
  const commandHelp = helpFor === undefined ? undefined : commandUsage(helpFor);
  if (commandHelp !== undefined) {
    console.log(commandHelp);
    return 0;
  }
  if (command === "--help" || command === "-h" || command === "help") {
    console.log(USAGE);
    return 0;
  }
  if (command === "--version" || command === "-V") {
    console.log(`httptunneling ${VERSION} (deno ${Deno.version.deno})`);
    return 0;
  }
  try {
    const run = COMMANDS[command ?? ""];
    if (run === undefined) {
      throw new UsageError(
        command === undefined
          ? "no command given"
          : `unknown command "${command}"`,
      );
    }
    return await run(rest);
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(
        `error: ${error.message}\nRun "httptunneling --help" for usage.`,
      );
      return 2;
    }
    console.error(`error: ${errorMessage(error)}`);
    return 1;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
