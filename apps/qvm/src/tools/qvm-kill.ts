import { AdminVmKill } from '@qubes-bus/contracts';
import { vmActionTool } from '../each-vm';
import { KILL_TIMEOUT_MS, killFailure } from '../lifecycle';

/**
 * qvm-kill: stop qubes at once, their disks not synced (qubesadmin/tools/qvm_kill.py). A qube
 * that is not running is left alone, without error (as R4.1).
 */
export const qvmKill = vmActionTool({
  name: 'qvm-kill',
  description: 'Forceful shutdown of qubes',
  endpoint: AdminVmKill,
  ignore: ['VM_NOT_RUNNING'],
  describe: killFailure,
  timeoutMs: KILL_TIMEOUT_MS,
});
