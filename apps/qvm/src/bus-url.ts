import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { DEFAULT_NATS_URL } from '@qubes-bus/bus';

/** The repository the tools run from: three levels above both src/ and the dist bundle. */
const REPO_ROOT = path.resolve(__dirname, '../../..');

/** The var dir of the embedded stack (`npm start`), where it leaves its bus URL. */
export function embeddedVarDir(env: NodeJS.ProcessEnv = process.env): string {
  return env['QUBES_VAR_DIR'] ?? path.join(REPO_ROOT, 'var');
}

export interface BusUrl {
  url: string;
  /** Where it came from, for error messages. */
  source: string;
}

/** `QUBES_NATS_URL`, else the embedded stack's `var/nats.url`, else the local default. */
export function resolveBusUrl(env: NodeJS.ProcessEnv = process.env): BusUrl {
  const fromEnv = env['QUBES_NATS_URL'];
  if (fromEnv !== undefined && fromEnv.trim() !== '') return { url: fromEnv.trim(), source: 'QUBES_NATS_URL' };
  const file = path.join(embeddedVarDir(env), 'nats.url');
  try {
    const url = readFileSync(file, 'utf8').trim();
    if (url !== '') return { url, source: file };
  } catch {
    // no embedded stack has run here
  }
  return { url: DEFAULT_NATS_URL, source: 'the default' };
}

/** Where qubes.xml is, for --offline: QUBES_DATA_DIR, else the embedded stack's, else /var/lib/qubes. */
export function resolveDataDir(env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env['QUBES_DATA_DIR'];
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  const embedded = path.join(embeddedVarDir(env), 'lib/qubes');
  return existsSync(path.join(embedded, 'qubes.xml')) ? embedded : '/var/lib/qubes';
}
