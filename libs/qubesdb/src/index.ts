export { checkPath, keyOf, pathOf } from './path';
export { QubesDb, VmQubesDb } from './qubesdb';
export type { QubesDbChange, QubesDbSession, QubesDbWatch } from './qubesdb';
