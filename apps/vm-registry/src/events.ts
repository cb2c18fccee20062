import type { Bus } from '@qubes-bus/bus';
import {
  AppPropertyReset,
  AppPropertySet,
  DomainAdd,
  DomainDelete,
  FeatureDelete,
  FeatureSet,
  LabelAdd,
  LabelRemove,
  TagAdd,
  TagDelete,
  VmPropertyReset,
  VmPropertySet,
} from '@qubes-bus/contracts';
import type { Logger } from '@qubes-bus/log';
import type { EventSink, PublishedChange } from './registry';

/** Publishes each change as its Qubes event, in order; a lost event is logged, never thrown. */
export function busEvents(bus: Bus): EventSink {
  return {
    publish(changes, log) {
      for (const published of changes) {
        publishOne(bus, published).catch((err: unknown) => log.error({ err, change: published.change.type }, 'an event could not be published'));
      }
    },
  };
}

/** Offline there is no bus, and nobody to tell. */
export const NO_EVENTS: EventSink = { publish: (_changes: readonly PublishedChange[], _log: Logger) => undefined };

function publishOne(bus: Bus, { change: c, revision }: PublishedChange): Promise<number> {
  switch (c.type) {
    case 'domain-add':
      return bus.publish(DomainAdd, { vm: c.vm }, { class: c.class, revision });
    case 'domain-delete':
      return bus.publish(DomainDelete, { vm: c.vm }, { class: c.class });
    case 'property-set':
    case 'property-reset': {
      const fields = { name: c.name, newvalue: c.newvalue, oldvalue: c.oldvalue, revision };
      if (c.vm === null) return bus.publish(c.type === 'property-set' ? AppPropertySet : AppPropertyReset, { qualifier: c.name }, fields);
      return bus.publish(c.type === 'property-set' ? VmPropertySet : VmPropertyReset, { vm: c.vm, qualifier: c.name }, fields);
    }
    case 'feature-set':
      return bus.publish(FeatureSet, { vm: c.vm, qualifier: c.feature }, { feature: c.feature, value: c.value, oldvalue: c.oldvalue, revision });
    case 'feature-delete':
      return bus.publish(FeatureDelete, { vm: c.vm, qualifier: c.feature }, { feature: c.feature, revision });
    case 'tag-add':
      return bus.publish(TagAdd, { vm: c.vm, qualifier: c.tag }, { tag: c.tag, revision });
    case 'tag-delete':
      return bus.publish(TagDelete, { vm: c.vm, qualifier: c.tag }, { tag: c.tag, revision });
    case 'label-add':
      return bus.publish(LabelAdd, { qualifier: c.label }, { label: c.label, color: c.color, index: c.index });
    case 'label-remove':
      return bus.publish(LabelRemove, { qualifier: c.label }, { label: c.label });
    case 'volume-config-set':
    case 'pools-set':
      // The storage service, which asked for these, tells of its volumes and pools itself.
      return Promise.resolve(0);
  }
}
