export { fsyncDir, fsyncFd, fsyncFile } from './sync';
export {
  createFileDurably,
  mkdirDurably,
  removeDurably,
  removeStaleTemps,
  renameDurably,
  replaceFileDurably,
  tempPathFor,
  writeFileDurably,
} from './write';
export type { WriteOptions } from './write';
export { isLockBusy, lockFile, lockNowSync } from './lock';
export type { LockOptions } from './lock';
