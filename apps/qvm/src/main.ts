import path from 'node:path';
import { CommanderError } from 'commander';
import { connectBus, redactUrl, StdioRequester, type Bus } from '@qubes-bus/bus';
import { isQubesError, QubesError } from '@qubes-bus/contracts';
import { createLogger } from '@qubes-bus/log';
import { resolveBusUrl, resolveDataDir } from './bus-url';
import { failureReport, ToolFailures } from './errors';
import type { ToolContext } from './tool';
import { qvmCheck } from './tools/qvm-check';
import { qvmClone } from './tools/qvm-clone';
import { qvmCreate } from './tools/qvm-create';
import { qvmEvents } from './tools/qvm-events';
import { qvmFeatures } from './tools/qvm-features';
import { qvmKill } from './tools/qvm-kill';
import { qvmLs } from './tools/qvm-ls';
import { qvmPause, qvmUnpause } from './tools/qvm-pause';
import { qvmPool } from './tools/qvm-pool';
import { qubesPrefs, qvmPrefs } from './tools/qvm-prefs';
import { qvmRemove } from './tools/qvm-remove';
import { qvmService } from './tools/qvm-service';
import { qvmShutdown } from './tools/qvm-shutdown';
import { qvmStart } from './tools/qvm-start';
import { qvmTags } from './tools/qvm-tags';
import { qvmVolume } from './tools/qvm-volume';

const TOOLS = {
  'qvm-ls': qvmLs,
  'qvm-prefs': qvmPrefs,
  'qubes-prefs': qubesPrefs,
  'qvm-create': qvmCreate,
  'qvm-remove': qvmRemove,
  'qvm-features': qvmFeatures,
  'qvm-service': qvmService,
  'qvm-tags': qvmTags,
  'qvm-events': qvmEvents,
  'qvm-start': qvmStart,
  'qvm-shutdown': qvmShutdown,
  'qvm-kill': qvmKill,
  'qvm-pause': qvmPause,
  'qvm-unpause': qvmUnpause,
  'qvm-check': qvmCheck,
  'qvm-volume': qvmVolume,
  'qvm-pool': qvmPool,
  'qvm-clone': qvmClone,
} as const;

export type ToolName = keyof typeof TOOLS;

/**
 * Runs one tool. The only place that prints `ERROR: `: every failure below ends here as one
 * line (one per VM when several failed each on its own) and a non-zero exit status.
 */
export async function run(tool: string, argv: readonly string[]): Promise<void> {
  const make = TOOLS[tool as ToolName];
  if (make === undefined) {
    fail([`unknown tool ${tool}; the tools are ${Object.keys(TOOLS).join(', ')}`], undefined);
    return;
  }
  let bus: Bus | undefined;
  let offline: StdioRequester | undefined;
  const target = resolveBusUrl();
  const ctx: ToolContext = {
    // Made on first use: most tools never read their input.
    get stdin() {
      return process.stdin;
    },
    stdout: process.stdout,
    stderr: process.stderr,
    signals: process,
    async api(options = {}) {
      if (!options.offline) return ctx.bus();
      offline ??= startOfflineRegistry(options.createStore === true);
      return offline;
    },
    async bus() {
      bus ??= await connectBus({
        url: target.url,
        name: tool,
        // Tools log nothing unless asked (LOG_LEVEL=debug), and never on stdout.
        log: createLogger(tool, { destination: 2, level: process.env['LOG_LEVEL'] ?? 'warn', pretty: false }),
        mode: 'tool',
      }).catch((err: unknown) => {
        throw isQubesError(err, 'BUS_UNREACHABLE') ? unreachable(err, target) : err;
      });
      return bus;
    },
  };
  const command = make(ctx)
    .exitOverride()
    // Usage errors are failures too: one ERROR line (commander's help text still goes out as is).
    .configureOutput({ outputError: (text, write) => write(`ERROR: ${text.replace(/^error: /, '')}`) });
  try {
    await command.parseAsync([...argv], { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      // commander has printed usage or its message already
      process.exitCode = err.exitCode === 0 ? 0 : 2;
    } else if (isQubesError(err, 'SERVICE_UNAVAILABLE') && offline === undefined) {
      // The bus answers but the service does not: often another nats-server on the default port.
      fail([`${err.message} (bus at ${redactUrl(target.url)}, from ${target.source}; start the stack with 'npm start')`], err);
    } else {
      const { status, lines } = failureReport(err);
      fail(lines, err, status);
    }
  } finally {
    await bus?.close();
    await offline?.close();
  }
}

/**
 * The vm-registry bundle beside this one (dist/apps/vm-registry/main.js), run on qubes.xml with
 * no bus; it refuses (STORE_LOCKED) while a registry runs.
 */
function startOfflineRegistry(createStore: boolean): StdioRequester {
  const registry = process.env['QUBES_REGISTRY_BIN'] ?? path.resolve(__dirname, '../vm-registry/main.js');
  const args = [registry, '--offline-stdio', ...(createStore ? ['--create-store'] : [])];
  return new StdioRequester(process.execPath, args, { ...process.env, QUBES_DATA_DIR: resolveDataDir() });
}

function unreachable(err: QubesError, target: { url: string; source: string }): QubesError {
  const reason = err.message.slice(err.message.lastIndexOf(': ') + 2);
  return new QubesError(
    'BUS_UNREACHABLE',
    `the qubes bus is unreachable at ${redactUrl(target.url)} (from ${target.source}: ${reason}); ` +
      "start it with 'npm start' in the qubes-bus directory, or point QUBES_NATS_URL at a running bus",
    { cause: err },
  );
}

/** One `ERROR: ` line per failure (none for a tool that only ends with a status), and the exit status. */
function fail(lines: readonly string[], err: unknown, status = 1): void {
  for (const line of lines) process.stderr.write(`ERROR: ${line.split('\n')[0]}\n`);
  if (process.env['LOG_LEVEL'] === 'debug' && err instanceof Error && lines.length > 0) {
    for (const each of err instanceof ToolFailures ? err.failures : [err]) process.stderr.write(`${each.stack ?? ''}\n`);
  }
  process.exitCode = status;
}
