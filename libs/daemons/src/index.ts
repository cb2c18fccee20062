export { DEBIAN_PACKAGE, findBinary, requireBinary } from './binaries';
export { DEFAULT_MAX_PAYLOAD, spawnNatsServer } from './nats-server';
export type { NatsServer, NatsServerOptions } from './nats-server';
export { defaultLibvirtDriver, LibvirtDriver, startLibvirtd } from './libvirtd';
export type { Libvirtd, LibvirtdOptions } from './libvirtd';
export { canConnect, pidAlive, terminate, terminatePid, waitFor } from './process';
export { withFileLock } from './file-lock';
