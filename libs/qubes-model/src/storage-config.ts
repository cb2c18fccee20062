import { touch, type Mutation } from './mutation';
import type { QubesApp } from './qubes-app';
import { childElements, element, parseXml } from './xml-tree';

// Volume config and pools: the storage service's, kept here as qubes.xml holds them.

/**
 * The VM's `<volume-config>`: one attribute map per `<volume>` (name, pool, vid, size, rw,
 * snap_on_start, ... as Qubes writes them, `True`/`False` for booleans); empty if it has none.
 */
export function volumeConfig(app: QubesApp, vm: string): Record<string, string>[] {
  const config = app.domain(vm).volumeConfig;
  if (config === null) return [];
  const volumes = config.children.some((c) => 'raw' in c)
    ? parseXml(`<volume-config>${config.children.map((c) => ('raw' in c ? c.raw : '')).join('')}</volume-config>`, {
        path: `the volume config of ${vm}`,
        root: ['volume-config'],
        validated: true,
      })
    : config;
  return childElements(volumes, 'volume').map((v) => ({ ...v.attrs }));
}

/** Replaces the VM's volume config (the storage service's call); saved like any change. */
export function setVolumeConfig(app: QubesApp, vm: string, volumes: readonly Readonly<Record<string, string>>[]): Mutation {
  const d = app.domain(vm);
  const before = d.volumeConfig;
  const undo = touch(app, vm, () => (d.volumeConfig = before));
  d.volumeConfig = volumes.length === 0 ? null : element('volume-config', {}, volumes.map((attrs) => element('volume', orderedVolumeAttrs(attrs))));
  return { changes: [{ type: 'volume-config-set', vm }], undo };
}

/** Replaces the pools (`<pools>`): one attribute map per pool, name and driver first. */
export function setPools(app: QubesApp, pools: readonly Readonly<Record<string, string>>[]): Mutation {
  const before = app.pools;
  const undo = touch(app, null, () => (app.pools = before));
  app.pools = pools.map((attrs) => element('pool', { ...attrs }));
  return { changes: [{ type: 'pools-set' }], undo };
}

/** Qubes writes a volume's name, pool and vid first; the rest follow sorted, as lxml keeps them. */
function orderedVolumeAttrs(attrs: Readonly<Record<string, string>>): Record<string, string> {
  const { name, pool, vid, ...rest } = attrs;
  const ordered: Record<string, string> = {};
  if (name !== undefined) ordered['name'] = name;
  if (pool !== undefined) ordered['pool'] = pool;
  if (vid !== undefined) ordered['vid'] = vid;
  for (const key of Object.keys(rest).sort()) ordered[key] = rest[key]!;
  return ordered;
}
