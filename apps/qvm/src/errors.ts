/**
 * Failures the tools find themselves (the registry's come as QubesError). main.ts prints each
 * as one `ERROR: ` line.
 */

/** The command line is wrong (a missing option, a bad value for one): exit status 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** The tool could not do what was asked (the user said no, a tag is absent): exit status 1. */
export class ToolError extends Error {
  override name = 'ToolError';
}

/**
 * Several things failed, each on its own (`qvm-kill a b c`: b refused, a and c were killed):
 * one `ERROR: ` line each, exit status 1.
 */
export class ToolFailures extends Error {
  override name = 'ToolFailures';

  constructor(readonly failures: readonly Error[]) {
    super(failures.map((failure) => failure.message).join('\n'));
  }
}

/**
 * The tool ends with this exit status and no error to print: what it had to say is on stdout
 * (qvm-check: the check does not hold).
 */
export class ExitStatus extends Error {
  override name = 'ExitStatus';

  constructor(readonly status: number) {
    super(`exit status ${status}`);
  }
}

/** What a failure shows the user: the lines main.ts prints after `ERROR: `, and the exit status. */
export function failureReport(err: unknown): { status: number; lines: string[] } {
  const firstLine = (error: unknown): string => (error instanceof Error ? error.message : String(error)).split('\n')[0]!;
  if (err instanceof ExitStatus) return { status: err.status, lines: [] };
  if (err instanceof ToolFailures) return { status: 1, lines: err.failures.map(firstLine) };
  return { status: err instanceof UsageError ? 2 : 1, lines: [firstLine(err)] };
}
