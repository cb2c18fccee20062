import { tmpdir } from 'node:os';
import path from 'node:path';
import { runService } from '@qubes-bus/bus';
import { ServiceName } from '@qubes-bus/contracts';
import { createStorage } from './service';

const localDir = process.env['QUBES_RUN_DIR'] ?? path.join(tmpdir(), `qubes-bus-${process.getuid?.() ?? 0}`);
void runService(ServiceName.Storage, (bus, log) => createStorage({ bus, log, localDir }), { localDir });
