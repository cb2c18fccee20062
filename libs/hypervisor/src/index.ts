export { buildDomainXml, buildHotplugDiskXml, diskTarget, DomainFlavor, parseDomainFlavor } from './domain-xml';
export type { DiskSpec, DomainSpec } from './domain-xml';
export { isConnectionLost, LibvirtHypervisor } from './libvirt';
export { parseEventLine } from './libvirt-events';
export { OfflineHypervisor } from './offline';
export { DomainState } from './port';
export type { DomainInfo, DomainRef, HostInfo, Hypervisor, LifecycleEvent } from './port';
