import { AdminVmPause, AdminVmUnpause } from '@qubes-bus/contracts';
import { vmActionTool } from '../each-vm';

/** qvm-pause: pause running qubes (qubesadmin/tools/qvm_pause.py). */
export const qvmPause = vmActionTool({ name: 'qvm-pause', description: 'Pause qubes', endpoint: AdminVmPause });

/** qvm-unpause: resume paused qubes (qubesadmin/tools/qvm_unpause.py). */
export const qvmUnpause = vmActionTool({ name: 'qvm-unpause', description: 'Unpause qubes', endpoint: AdminVmUnpause });
