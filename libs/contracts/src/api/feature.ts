import * as z from 'zod/mini';
import { defineApi, DestScope } from '../descriptors';
import { ServiceName } from '../subjects';
import { featureNameSchema, featureValueSchema, ifRevisionSchema, revisionReplySchema, revisionSchema } from './common';

const common = { service: ServiceName.VmRegistry, scope: DestScope.Vm } as const;

/** `admin.vm.feature.*`: a VM's features, free-form settings read by the VM and by services. */
export const AdminVmFeature = {
  /** Deviation: Qubes lists names only; the values come along, for one round trip. */
  List: defineApi({
    ...common,
    method: 'admin.vm.feature.List',
    summary: "A VM's features with their values",
    reply: z.object({ features: z.record(z.string(), z.string()), revision: revisionSchema }),
    errors: ['VM_NOT_FOUND'],
  }),
  Get: defineApi({
    ...common,
    method: 'admin.vm.feature.Get',
    summary: 'One feature of a VM',
    arg: featureNameSchema,
    reply: z.object({ value: z.string() }),
    errors: ['VM_NOT_FOUND', 'FEATURE_NOT_FOUND'],
  }),
  CheckWithTemplate: defineApi({
    ...common,
    method: 'admin.vm.feature.CheckWithTemplate',
    summary: "A feature of the VM, else of its template (and the template's template)",
    arg: featureNameSchema,
    reply: z.object({ value: z.string() }),
    errors: ['VM_NOT_FOUND', 'FEATURE_NOT_FOUND'],
  }),
  CheckWithNetvm: defineApi({
    ...common,
    method: 'admin.vm.feature.CheckWithNetvm',
    summary: 'A feature of the VM, else of its netvm (and up the chain)',
    arg: featureNameSchema,
    reply: z.object({ value: z.string() }),
    errors: ['VM_NOT_FOUND', 'FEATURE_NOT_FOUND'],
  }),
  Set: defineApi({
    ...common,
    method: 'admin.vm.feature.Set',
    summary: 'Set a feature; answered once the change is on disk',
    arg: featureNameSchema,
    payload: z.extend(ifRevisionSchema, { value: featureValueSchema }),
    reply: revisionReplySchema,
    errors: ['VM_NOT_FOUND', 'CONFLICT'],
  }),
  Remove: defineApi({
    ...common,
    method: 'admin.vm.feature.Remove',
    summary: 'Remove a feature; answered once the change is on disk',
    arg: featureNameSchema,
    payload: z.optional(ifRevisionSchema),
    reply: revisionReplySchema,
    errors: ['VM_NOT_FOUND', 'FEATURE_NOT_FOUND', 'CONFLICT'],
  }),
} as const;
