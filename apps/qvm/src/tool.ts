import type { EventEmitter } from 'node:events';
import type { Bus, Requester } from '@qubes-bus/bus';

/** What every tool gets. */
export interface ToolContext {
  /**
   * Where Admin API calls go: the bus; or with `offline`, a vm-registry run as a child process
   * straight on qubes.xml (no bus, no hypervisor), for installation and recovery; only with
   * `createStore` (qvm-create, installing) does it create a qubes.xml where there is none.
   */
  api(options?: { offline?: boolean; createStore?: boolean }): Promise<Requester>;
  /** The bus itself, for events (qvm-events). */
  bus(): Promise<Bus>;
  readonly stdin: NodeJS.ReadableStream & { readonly isTTY?: boolean };
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
  /** Where SIGINT and SIGTERM arrive (the process; tests pass their own emitter). */
  readonly signals: EventEmitter;
}
