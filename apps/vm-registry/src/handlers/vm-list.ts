import { QubesError, type AdminVmList, type ReplyOf } from '@qubes-bus/contracts';
import { initialPowerState, summarizeDomains, type QubesXml } from '@qubes-bus/qubes-model';
import type { HandlerContext } from '@qubes-bus/bus';

/** `admin.vm.List`: every VM when called on dom0, else just the destination VM. */
export function listVms(model: QubesXml, ctx: HandlerContext): ReplyOf<typeof AdminVmList> {
  const all = summarizeDomains(model).map((vm) => ({ ...vm, state: initialPowerState(vm.class) }));
  if (ctx.dest === undefined || ctx.dest === 'dom0') return { domains: all };
  const one = all.filter((vm) => vm.name === ctx.dest);
  if (one.length === 0) throw new QubesError('VM_NOT_FOUND', `no such domain: ${ctx.dest}`, { details: { vm: ctx.dest } });
  return { domains: one };
}
