import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface TmpDir {
  readonly path: string;
  /** Removes the directory and everything in it. */
  remove(): void;
}

/** A fresh, empty directory under the system temp dir, for one test file's data. */
export function tmpDataDir(prefix = 'qubes-bus-test-'): TmpDir {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  return { path: dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
