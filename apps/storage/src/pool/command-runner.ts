import { execFile } from 'node:child_process';
import { QubesError } from '@qubes-bus/contracts';

/**
 * The one way the device-mapper drivers (lvm_thin, file) run their commands (`lvcreate`,
 * `dmsetup`, `losetup`, ...): real processes in production; in tests, a recorder that checks
 * what would run (this kernel has no device-mapper).
 */
export interface CommandRunner {
  /** Runs `program args`, resolving with its standard output; STORAGE_COMMAND_FAILED if it fails. */
  run(program: string, args: readonly string[]): Promise<string>;
}

/** Runs commands for real, in the C locale (their output is parsed), 10 minutes at most each. */
export class ExecRunner implements CommandRunner {
  run(program: string, args: readonly string[]): Promise<string> {
    return new Promise((resolve, reject) => {
      execFile(program, [...args], { env: { ...process.env, LC_ALL: 'C' }, timeout: 600_000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
        if (err === null) return resolve(stdout);
        const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
        const detail = missing ? `${program} is not installed` : stderr.trim() || err.message;
        if (/No space left|insufficient free space|out of data space/i.test(detail)) {
          return reject(new QubesError('STORAGE_FULL', `${program} ${args.join(' ')}: ${detail}`, { details: { command: program } }));
        }
        reject(new QubesError('STORAGE_COMMAND_FAILED', `${program} ${args.join(' ')} failed: ${detail}`, { details: { command: program, args } }));
      });
    });
  }
}
