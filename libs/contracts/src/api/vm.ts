import * as z from 'zod/mini';
import { defineApi, DestScope } from '../descriptors';
import { ServiceName } from '../subjects';

/** Qubes R4 VM classes (qubes/vm/). */
export const VmClass = {
  AdminVM: 'AdminVM',
  TemplateVM: 'TemplateVM',
  AppVM: 'AppVM',
  StandaloneVM: 'StandaloneVM',
  DispVM: 'DispVM',
} as const;
export type VmClass = (typeof VmClass)[keyof typeof VmClass];
export const vmClassSchema = z.enum(Object.values(VmClass) as [VmClass, ...VmClass[]]);

/** Power states as Qubes reports them (qubes/vm/qubesvm.py get_power_state). */
export const PowerState = {
  Halted: 'Halted',
  Transient: 'Transient',
  Running: 'Running',
  Paused: 'Paused',
  Suspended: 'Suspended',
  Halting: 'Halting',
  Dying: 'Dying',
  Crashed: 'Crashed',
  NA: 'NA',
} as const;
export type PowerState = (typeof PowerState)[keyof typeof PowerState];
export const powerStateSchema = z.enum(Object.values(PowerState) as [PowerState, ...PowerState[]]);

export const vmSummarySchema = z.object({
  name: z.string(),
  class: vmClassSchema,
  state: powerStateSchema,
  label: z.string(),
  template: z.nullable(z.string()),
  netvm: z.nullable(z.string()),
});
export type VmSummary = z.infer<typeof vmSummarySchema>;

/**
 * `admin.vm.List`: on dom0 every VM, on a VM just that one (Qubes' semantics).
 * Deviation: Qubes answers only name, class and state and lets qvm-ls fetch properties one VM
 * at a time; here the reply also carries the columns every listing shows (label, template,
 * netvm), so `qvm-ls` costs one round trip however many VMs there are.
 */
export const AdminVmList = defineApi({
  method: 'admin.vm.List',
  service: ServiceName.VmRegistry,
  scope: DestScope.Vm,
  summary: 'List VMs with their class, power state, label, template and netvm',
  reply: z.object({ domains: z.array(vmSummarySchema) }),
  errors: ['VM_NOT_FOUND'],
});
