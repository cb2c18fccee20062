export { DEFAULT_LABELS, labelId } from './labels';
export type { Label } from './labels';
export { initialPowerState, initialQubesXml, parseQubesXml, serializeQubesXml, summarizeDomains } from './qubes-xml';
export type { DomainRecord, PoolRecord, PropertyValue, QubesXml } from './qubes-xml';
