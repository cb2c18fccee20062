import { spawn } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { AdminPoolList } from '@qubes-bus/contracts';
import { REPO_ROOT, startNats, startRegistry, startService, trackProcess, tmpDataDir, type Started, type TestNats, type TmpDir } from '@qubes-bus/testing';

export { buildBundles, REPO_ROOT, startRegistry } from '@qubes-bus/testing';
export type { Started } from '@qubes-bus/testing';

/**
 * The tools as a user runs them: the built bundles, the bin links in node_modules/.bin, a real
 * nats-server and a real vm-registry process. Nothing of the registry's code is imported.
 */
export interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `node_modules/.bin/<tool> args` from the repository root; stdin is empty (not a terminal). */
export function tool(name: string, args: readonly string[], env: NodeJS.ProcessEnv): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(path.join(REPO_ROOT, 'node_modules/.bin', name), [...args], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/**
 * Runs the tools against a stack: `qvm` runs one and gives its result; `ok` runs one that must
 * succeed and print no error, and gives its stdout.
 */
export function toolsOf(stack: () => { env: NodeJS.ProcessEnv }): {
  qvm(name: string, ...args: string[]): Promise<Result>;
  ok(name: string, ...args: string[]): Promise<string>;
} {
  const qvm = (name: string, ...args: string[]): Promise<Result> => tool(name, args, stack().env);
  return {
    qvm,
    async ok(name, ...args) {
      const result = await qvm(name, ...args);
      if (result.code !== 0 || result.stderr !== '') throw new Error(`${name} ${args.join(' ')} exited with ${result.code}:\n${result.stderr}`);
      return result.stdout;
    },
  };
}

/** The environment of a tool: this bus, this data dir, no stray settings from the caller. */
export function toolEnv(natsUrl: string, dataDir: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, QUBES_NATS_URL: natsUrl, QUBES_DATA_DIR: dataDir };
  delete env['LOG_LEVEL'];
  delete env['QUBES_REGISTRY_BIN'];
  return env;
}

/** A long-running tool (qvm-events), its stdout read line by line. */
export interface Watching extends Started {
  /** Resolves with the next line printed, or fails after `timeoutMs`. */
  nextLine(timeoutMs?: number): Promise<string>;
  /** The lines printed and not yet taken by nextLine(). */
  takeRest(): string[];
  stderr(): string;
}

export function watch(name: string, args: readonly string[], env: NodeJS.ProcessEnv): Watching {
  const child = spawn(path.join(REPO_ROOT, 'node_modules/.bin', name), [...args], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const lines: string[] = [];
  const waiting: Array<(line: string) => void> = [];
  createInterface({ input: child.stdout }).on('line', (line) => {
    const next = waiting.shift();
    if (next === undefined) lines.push(line);
    else next(line);
  });
  const proc = trackProcess(child);
  return {
    ...proc,
    stderr: () => stderr,
    takeRest: () => lines.splice(0),
    nextLine(timeoutMs = 10_000) {
      const ready = lines.shift();
      if (ready !== undefined) return Promise.resolve(ready);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiting.splice(waiting.indexOf(take), 1);
          reject(new Error(`${name} printed no line within ${timeoutMs} ms (stderr: ${stderr || 'nothing'})`));
        }, timeoutMs);
        const take = (line: string): void => {
          clearTimeout(timer);
          resolve(line);
        };
        waiting.push(take);
      });
    },
  };
}

/** A bus, a data dir and a registry for one test file. */
export interface Stack {
  readonly nats: TestNats;
  readonly dir: TmpDir;
  readonly registry: Started;
  readonly env: NodeJS.ProcessEnv;
  stop(): Promise<void>;
}

/** `registryEnv`: more environment for the registry (startRegistry); `storage`: the storage service too. */
export async function startStack(options: { registryEnv?: NodeJS.ProcessEnv; storage?: boolean } = {}): Promise<Stack> {
  const nats = await startNats();
  const dir = tmpDataDir('qubes-bus-qvm-');
  let registry: Started;
  let storage: Started | undefined;
  try {
    registry = await startRegistry(nats.url, dir.path, options.registryEnv);
    if (options.storage === true) storage = await startService('storage', nats.url, { QUBES_DATA_DIR: dir.path }, { endpoint: AdminPoolList, dest: 'dom0' });
  } catch (err) {
    await nats.stop();
    dir.remove();
    throw err;
  }
  return {
    nats,
    dir,
    registry,
    env: toolEnv(nats.url, dir.path),
    async stop() {
      try {
        await storage?.stop();
        await registry.stop();
      } finally {
        await nats.stop();
        dir.remove();
      }
    },
  };
}

/** One `ERROR: ` line on stderr and nothing else: how every failure of a tool looks. */
export function errorLine(result: Result): string {
  const lines = result.stderr.split('\n').filter((line) => line !== '');
  if (lines.length !== 1 || !lines[0]!.startsWith('ERROR: ')) throw new Error(`expected one ERROR line, got stderr:\n${result.stderr}`);
  return lines[0]!;
}
