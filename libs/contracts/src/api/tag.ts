import * as z from 'zod/mini';
import { defineApi, DestScope } from '../descriptors';
import { ServiceName } from '../subjects';
import { ifRevisionSchema, revisionReplySchema, revisionSchema, tagNameSchema } from './common';

const common = { service: ServiceName.VmRegistry, scope: DestScope.Vm } as const;

/** `admin.vm.tag.*`: a VM's tags, which policies and tools select VMs by. */
export const AdminVmTag = {
  List: defineApi({
    ...common,
    method: 'admin.vm.tag.List',
    summary: "A VM's tags",
    reply: z.object({ tags: z.array(z.string()), revision: revisionSchema }),
    errors: ['VM_NOT_FOUND'],
  }),
  Get: defineApi({
    ...common,
    method: 'admin.vm.tag.Get',
    summary: 'Whether a VM has a tag',
    arg: tagNameSchema,
    reply: z.object({ present: z.boolean() }),
    errors: ['VM_NOT_FOUND'],
  }),
  Set: defineApi({
    ...common,
    method: 'admin.vm.tag.Set',
    summary: 'Add a tag; answered once the change is on disk',
    arg: tagNameSchema,
    payload: z.optional(ifRevisionSchema),
    reply: revisionReplySchema,
    errors: ['VM_NOT_FOUND', 'CONFLICT'],
  }),
  Remove: defineApi({
    ...common,
    method: 'admin.vm.tag.Remove',
    summary: 'Remove a tag; answered once the change is on disk',
    arg: tagNameSchema,
    payload: z.optional(ifRevisionSchema),
    reply: revisionReplySchema,
    errors: ['VM_NOT_FOUND', 'TAG_NOT_FOUND', 'CONFLICT'],
  }),
} as const;
