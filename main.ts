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
import { nearest } from "./lib/suggest.ts";
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
    if (helpFor === undefined) {
      console.log(USAGE);
      return 0;
    }
    return usageError(unknownCommand(helpFor));
  }
  if (command === "--version" || command === "-V") {
    console.log(`httptunneling ${VERSION} (deno ${Deno.version.deno})`);
    return 0;
  }
  const run = COMMANDS[command ?? ""];
  if (command === undefined || run === undefined) {
    return usageError(
      command === undefined ? "no command given" : unknownCommand(command),
    );
  }
  try {
    return await run(rest);
  } catch (error) {
    if (error instanceof UsageError) return usageError(error.message, command);
    console.error(`error: ${errorMessage(error)}`);
    return 1;
  }
}

/** The commands a user may type, with the general help's spellings. */
const COMMAND_NAMES = [
  ...Object.keys(COMMANDS).filter((name) => commandUsage(name) !== undefined),
  "help",
  "--help",
  "--version",
];

function unknownCommand(command: string): string {
  const guess = nearest(command, COMMAND_NAMES);
  return `unknown command "${command}"${
    guess === undefined ? "" : `: did you mean ${guess}?`
  }`;
}

// A wrong command line: what is wrong, and where the usage is; exit 2.
function usageError(message: string, command?: string): number {
  console.error(
    `error: ${message}\nRun "httptunneling ${
      command === undefined ? "" : `${command} `
    }--help" for usage.`,
  );
  return 2;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
