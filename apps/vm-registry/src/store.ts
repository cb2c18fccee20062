import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Logger } from '@qubes-bus/log';
import { initialQubesXml, parseQubesXml, serializeQubesXml, type QubesXml } from '@qubes-bus/qubes-model';
import { writeFileAtomic } from './atomic-file';

export const STORE_FILE = 'qubes.xml';

/**
 * qubes.xml on disk. The registry is its only writer (DESIGN.md §2). A file that does not parse
 * is reported with the parser's position and never replaced.
 */
export class QubesXmlStore {
  readonly path: string;

  constructor(
    readonly dataDir: string,
    private readonly log: Logger,
  ) {
    this.path = path.join(dataDir, STORE_FILE);
  }

  /** Reads the store, first creating a new installation's one (dom0 only) if there is none. */
  async load(): Promise<QubesXml> {
    await fs.mkdir(this.dataDir, { recursive: true, mode: 0o2770 });
    const fresh = serializeQubesXml(initialQubesXml(this.dataDir));
    if (await writeFileAtomic(this.path, fresh, { exclusive: true })) {
      this.log.info({ path: this.path }, 'created a new qubes.xml holding dom0');
    }
    return parseQubesXml(await fs.readFile(this.path, 'utf8'), this.path);
  }
}
