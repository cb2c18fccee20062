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

/** Publishes each change as its Qubes event, in order; a lost one is logged and counted (Bus.emit). */
export function busEvents(bus: Bus): EventSink {
  return {
    publish(changes) {
      for (const published of changes) publishOne(bus, published);
    },
  };
}

/** Offline there is no bus, and nobody to tell. */
export const NO_EVENTS: EventSink = { publish: (_changes: readonly PublishedChange[], _log: Logger) => undefined };

function publishOne(bus: Bus, { change: c, revision }: PublishedChange): void {
  switch (c.type) {
    case 'domain-add':
      return bus.emit(DomainAdd, { vm: c.vm }, { class: c.class, revision });
    case 'domain-delete':
      return bus.emit(DomainDelete, { vm: c.vm }, { class: c.class });
    case 'property-set':
    case 'property-reset': {
      const fields = { name: c.name, newvalue: c.newvalue, oldvalue: c.oldvalue, revision };
      if (c.vm === null) return bus.emit(c.type === 'property-set' ? AppPropertySet : AppPropertyReset, { qualifier: c.name }, fields);
      return bus.emit(c.type === 'property-set' ? VmPropertySet : VmPropertyReset, { vm: c.vm, qualifier: c.name }, fields);
    }
    case 'feature-set':
      return bus.emit(FeatureSet, { vm: c.vm, qualifier: c.feature }, { feature: c.feature, value: c.value, oldvalue: c.oldvalue, revision });
    case 'feature-delete':
      return bus.emit(FeatureDelete, { vm: c.vm, qualifier: c.feature }, { feature: c.feature, revision });
    case 'tag-add':
      return bus.emit(TagAdd, { vm: c.vm, qualifier: c.tag }, { tag: c.tag, revision });
    case 'tag-delete':
      return bus.emit(TagDelete, { vm: c.vm, qualifier: c.tag }, { tag: c.tag, revision });
    case 'label-add':
      return bus.emit(LabelAdd, { qualifier: c.label }, { label: c.label, color: c.color, index: c.index });
    case 'label-remove':
      return bus.emit(LabelRemove, { qualifier: c.label }, { label: c.label });
    case 'volume-config-set':
    case 'pools-set':
      // The storage service, which asked for these, tells of its volumes and pools itself.
      return;
  }
}
