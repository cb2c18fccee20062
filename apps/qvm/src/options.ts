/** Option parsers the tools share. */

/** A repeatable option (`--class a --class b`): every value, in order. */
export const repeatable = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];
