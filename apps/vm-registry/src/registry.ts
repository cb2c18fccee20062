import type { HandlerContext } from '@qubes-bus/bus';
import type { Logger } from '@qubes-bus/log';
import type { Change, Mutation, QubesApp } from '@qubes-bus/qubes-model';
import type { Lifecycle } from './lifecycle/lifecycle';
import type { PowerStates } from './lifecycle/power-state';
import type { QubesStore } from './store/qubes-store';

/** A change as published: what happened, and the revision it made. */
export interface PublishedChange {
  change: Change;
  revision: string;
}

/** Where the registry's events go: the bus, or nowhere (offline). */
export interface EventSink {
  publish(changes: readonly PublishedChange[], log: Logger): void;
}

/**
 * The registry's core, whatever carries its requests: reads answer from memory; a write is
 * checked and made in memory at once (requests are handled one at a time, so checks and change
 * see the same state), then answered only once a save holding it is on disk, then published.
 */
export class Registry {
  constructor(
    readonly store: QubesStore,
    private readonly events: EventSink,
    readonly lifecycle: Lifecycle,
  ) {}

  get power(): PowerStates {
    return this.lifecycle;
  }

  get app(): QubesApp {
    return this.store.app;
  }

  /**
   * Makes a change: `change` checks and applies it (throwing a QubesError leaves everything as
   * it was) and says what to answer; the answer goes out once the change is durable.
   */
  async write<T>(ctx: HandlerContext, change: (app: QubesApp) => { mutation: Mutation; reply: () => T }): Promise<T> {
    const { mutation, reply } = change(this.app);
    const answer = reply();
    if (mutation.changes.length === 0) {
      // Nothing changed, but what the caller saw may still be on its way to disk.
      await this.store.settled();
      return answer;
    }
    const published = mutation.changes.map((c) => ({ change: c, revision: this.app.revision(changedVm(c)) }));
    await this.store.commit(mutation.undo);
    this.events.publish(published, ctx.log);
    return answer;
  }
}

/** The VM whose revision a change moved, or null for the global properties and labels. */
function changedVm(change: Change): string | null {
  return 'vm' in change && change.type !== 'domain-delete' ? change.vm : null;
}
