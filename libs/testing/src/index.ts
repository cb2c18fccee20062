export { startNats } from './nats';
export type { TestNats } from './nats';
export { tmpDataDir } from './tmp-data-dir';
export type { TmpDir } from './tmp-data-dir';
export { LibvirtDriver, startLibvirtd } from '@qubes-bus/daemons';
export type { Libvirtd, LibvirtdOptions } from '@qubes-bus/daemons';
export { captureLog } from './capture-log';
export type { CapturedLog } from './capture-log';
export { rejectionOf, thrownBy } from './failures';
