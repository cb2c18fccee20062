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
