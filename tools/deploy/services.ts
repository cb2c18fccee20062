/**
 * How each service is deployed: the one place that says what differs between them. Everything
 * else (the bus URL, the logs, the environment file, the signals, the restarts, the hardening)
 * is the same for all and lives in the templates of `generate.ts`, which writes from this
 * table one systemd unit per service, `qubes-bus.target` and `docker/compose.yaml`:
 *
 *   npm run deploy-files --workspace tools
 *
 * Every app with a `src/main.ts` that is not the command-line tools (`type:cli`) is a service
 * and needs an entry here: the generator refuses to run without one, so a new service cannot
 * be left without a unit. An entry for an app that does not exist is refused too.
 */

/** A variable set for the service, in its unit and in its compose entry alike. */
export interface Variable {
  name: string;
  value: string;
  /** A comment written above it, when the value needs one. */
  why?: string;
}

/**
 * Who the service runs as. Root is said with its reason, which goes into the unit's head: it
 * runs with no `User=` under systemd and as `user: root` under compose.
 */
export type RunAs = { root: string; group?: string } | { user: string; group: string };

/**
 * Where it writes. `dataDirs`: the file system is read-only to it but these
 * (`ProtectSystem=strict`, `ReadWritePaths=`; under Docker, made in the image and owned by its
 * user). `anywhere`: it cannot be bounded, for the reason given (no `ProtectSystem=`).
 */
export type Writes = { dataDirs: readonly string[] } | { anywhere: string };

export interface Deployment {
  /** What it does, after `qubes-bus <app>: ` in the unit's `Description=`. */
  description: string;
  /** Lines for the head of the unit: what it needs of the host that is not said below. */
  notes: readonly string[];
  runAs: RunAs;
  environment: readonly Variable[];
  /** A directory under /run made for it (`RuntimeDirectory=`), owned by its user and group. */
  runtimeDirectory?: { name: string; mode: string; why: string };
  /** Started after these: other services by their app name, and units of the host. */
  after: { services: readonly string[]; host: readonly string[] };
  writes: Writes;
  /** How long a stop may take (`TimeoutStopSec=`): it answers what it has taken first. */
  stopTimeoutSec: number;
  compose: {
    /** Debian packages the image adds for the commands it runs. */
    packages: readonly string[];
    /** `source:target[:ro]`; a source that is a plain name is a named volume. */
    volumes: readonly string[];
    /** Only under compose: what systemd takes from /etc/qubes-bus/qubes-bus.env instead. */
    environment: readonly Variable[];
    /** Why the container needs the host's devices (`privileged: true`), when it does. */
    privileged?: string;
  };
}

/** The data dir of qubes.xml and the default pool (QUBES_DATA_DIR). */
const DATA_DIR = '/var/lib/qubes';

export const SERVICES: Readonly<Record<string, Deployment>> = {
  'vm-registry': {
    description: 'qubes.xml and the VMs in it',
    notes: [
      'It loads the native fs-ext and @unraid/libvirt addons from /usr/lib/qubes-bus/node_modules and',
      'runs virsh for events. LIBVIRT_URI (xen:///system, qemu:///system) goes in qubes-bus.env;',
      'unset, the registry runs offline (VMM_OFFLINE for lifecycle calls).',
    ],
    runAs: { root: "libvirt's system socket (qemu:///system, xen:///system) is root's" },
    environment: [{ name: 'QUBES_DATA_DIR', value: DATA_DIR }],
    after: { services: [], host: ['libvirtd.service'] },
    writes: { dataDirs: [DATA_DIR] },
    stopTimeoutSec: 15,
    compose: {
      packages: ['libvirt0', 'libvirt-clients'],
      volumes: [`qubes-data:${DATA_DIR}`, '/run/libvirt:/run/libvirt'],
      environment: [
        {
          name: 'LIBVIRT_URI',
          value: '${LIBVIRT_URI:-qemu:///system}',
          why: "The host's libvirtd; unset, the registry runs offline (VMM_OFFLINE for lifecycle calls).",
        },
      ],
    },
  },
  storage: {
    description: "pools and the VMs' volumes",
    notes: ['It runs on the host that has the disks.'],
    runAs: { root: 'the file and lvm_thin pools run losetup, dmsetup and LVM', group: 'qubes' },
    environment: [
      {
        name: 'QUBES_RUN_DIR',
        value: '/run/qubes-bus',
        why: 'Where an import offers its local socket to tools on this host (group qubes may send there).',
      },
    ],
    runtimeDirectory: { name: 'qubes-bus', mode: '0770', why: 'QUBES_RUN_DIR, open to group qubes' },
    after: { services: ['vm-registry'], host: [] },
    writes: { anywhere: 'its pools are wherever qvm-pool puts them, and LVM writes its metadata backups under /etc/lvm' },
    stopTimeoutSec: 30,
    compose: {
      packages: ['dmsetup', 'lvm2', 'thin-provisioning-tools'],
      volumes: [`qubes-data:${DATA_DIR}`, '/dev:/dev'],
      environment: [],
      privileged: 'loop devices and device-mapper are the host kernel\'s',
    },
  },
};
