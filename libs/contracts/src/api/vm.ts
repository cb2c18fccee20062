import * as z from 'zod/mini';
import { defineApi, DestScope } from '../descriptors';
import { ServiceName } from '../subjects';
import {
  ifRevisionSchema,
  labelNameSchema,
  propertyEntrySchema,
  propertyNameSchema,
  propertyValueSchema,
  revisionSchema,
} from './common';

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
  revision: revisionSchema,
  /** Only when asked for: the requested properties, with whether each is a default. */
  properties: z.optional(z.record(z.string(), propertyEntrySchema)),
});
export type VmSummary = z.infer<typeof vmSummarySchema>;

/**
 * `admin.vm.List`: on dom0 every VM, on a VM just that one (Qubes' semantics).
 * Deviation: Qubes answers only name, class and state and lets qvm-ls fetch properties one VM
 * at a time; here the reply carries the columns every listing shows, and on request any
 * properties (`payload.properties`, `["*"]` for all), so `qvm-ls` costs one round trip however
 * many VMs there are.
 */
export const AdminVmList = defineApi({
  method: 'admin.vm.List',
  service: ServiceName.VmRegistry,
  scope: DestScope.Vm,
  summary: 'List VMs with their class, power state, label, template and netvm',
  payload: z.optional(z.object({ properties: z.optional(z.array(z.union([propertyNameSchema, z.literal('*')]))) })),
  reply: z.object({ domains: z.array(vmSummarySchema) }),
  errors: ['VM_NOT_FOUND', 'PROPERTY_UNKNOWN'],
});

export const AdminVmclassList = defineApi({
  method: 'admin.vmclass.List',
  service: ServiceName.VmRegistry,
  scope: DestScope.Dom0,
  summary: 'List the VM classes',
  reply: z.object({ classes: z.array(vmClassSchema) }),
  errors: [],
});

/** What `admin.vm.Create.<class>` takes: Qubes' `name=… label=…` payload, as JSON. */
export const createVmPayloadSchema = z.object({
  name: z.string(),
  label: labelNameSchema,
  /** Further properties to set at creation (`qvm-create --property k=v`). */
  properties: z.optional(z.record(propertyNameSchema, propertyValueSchema)),
  /** The pool for the VM's volumes (used by the storage service). */
  pool: z.optional(z.string().check(z.regex(/^[a-zA-Z0-9_.-]{1,64}$/, 'is not a pool name'))),
});
export type CreateVmPayload = z.infer<typeof createVmPayloadSchema>;

const createVmReplySchema = z.object({ name: z.string(), qid: z.number(), uuid: z.string(), revision: revisionSchema });

/** The classes that can be created; dom0 exists once. */
export const CREATABLE_CLASSES = [VmClass.AppVM, VmClass.TemplateVM, VmClass.StandaloneVM, VmClass.DispVM] as const;
export type CreatableClass = (typeof CREATABLE_CLASSES)[number];

function defineCreate(klass: CreatableClass) {
  return defineApi({
    method: `admin.vm.Create.${klass}`,
    service: ServiceName.VmRegistry,
    scope: DestScope.Dom0,
    summary: `Create a ${klass}; arg: its template (default: the default template)`,
    arg: z.optional(z.string()),
    payload: createVmPayloadSchema,
    reply: createVmReplySchema,
    errors: [
      'VM_NAME_INVALID',
      'VM_ALREADY_EXISTS',
      'VM_NOT_FOUND',
      'LABEL_NOT_FOUND',
      'TEMPLATE_CLASS_INVALID',
      'PROPERTY_UNKNOWN',
      'PROPERTY_TYPE_INVALID',
      'PROPERTY_VALUE_INVALID',
      'PROPERTY_READ_ONLY',
      'NETVM_LOOP',
      'LIMIT_REACHED',
    ],
  });
}

/** `admin.vm.Create.<class>`, one endpoint per class as in Qubes. */
export const AdminVmCreate = {
  AppVM: defineCreate(VmClass.AppVM),
  TemplateVM: defineCreate(VmClass.TemplateVM),
  StandaloneVM: defineCreate(VmClass.StandaloneVM),
  DispVM: defineCreate(VmClass.DispVM),
} as const satisfies Record<CreatableClass, unknown>;

export const AdminVmRemove = defineApi({
  method: 'admin.vm.Remove',
  service: ServiceName.VmRegistry,
  scope: DestScope.Vm,
  summary: 'Remove a halted VM that no other VM uses',
  payload: z.optional(ifRevisionSchema),
  reply: z.null(),
  errors: ['VM_NOT_FOUND', 'VM_IN_USE', 'VM_RUNNING', 'VM_CLASS_INVALID', 'CONFLICT'],
});
