import type { Bus } from '@qubes-bus/bus';

/** What every tool gets: a lazily opened bus, and where to write. */
export interface ToolContext {
  bus(): Promise<Bus>;
  readonly stdout: NodeJS.WritableStream;
}
