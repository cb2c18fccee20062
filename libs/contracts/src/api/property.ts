import * as z from 'zod/mini';
import { defineApi, DestScope } from '../descriptors';
import type { ErrorCode } from '../errors';
import { ServiceName } from '../subjects';
import {
  ifRevisionSchema,
  propertyEntrySchema,
  propertyNameSchema,
  propertyTypeSchema,
  propertyValueSchema,
  revisionReplySchema,
  revisionSchema,
} from './common';

/**
 * The property calls, for a VM (`admin.vm.property.*`, on the VM) and for the system's global
 * properties (`admin.property.*`, on dom0): the same shapes, one definition.
 */
function definePropertyApi(prefix: 'admin.vm.property' | 'admin.property', scope: DestScope, owner: string) {
  const notFound: ErrorCode[] = prefix === 'admin.vm.property' ? ['VM_NOT_FOUND', 'PROPERTY_UNKNOWN'] : ['PROPERTY_UNKNOWN'];
  const writeErrors: ErrorCode[] = [
    ...notFound,
    'PROPERTY_TYPE_INVALID',
    'PROPERTY_VALUE_INVALID',
    'PROPERTY_READ_ONLY',
    'NETVM_LOOP',
    'TEMPLATE_CLASS_INVALID',
    'LABEL_NOT_FOUND',
    'VM_RUNNING',
    'CONFLICT',
  ];
  const common = { service: ServiceName.VmRegistry, scope } as const;
  return {
    List: defineApi({
      ...common,
      method: `${prefix}.List`,
      summary: `List the property names of ${owner}`,
      reply: z.object({ properties: z.array(z.string()) }),
      errors: notFound,
    }),
    Get: defineApi({
      ...common,
      method: `${prefix}.Get`,
      summary: `One property of ${owner}: value, whether it is the default, type`,
      arg: propertyNameSchema,
      reply: z.extend(propertyEntrySchema, { name: z.string(), revision: revisionSchema }),
      errors: notFound,
    }),
    GetAll: defineApi({
      ...common,
      method: `${prefix}.GetAll`,
      summary: `Every property of ${owner}`,
      reply: z.object({ properties: z.record(z.string(), propertyEntrySchema), revision: revisionSchema }),
      errors: notFound,
    }),
    GetDefault: defineApi({
      ...common,
      method: `${prefix}.GetDefault`,
      summary: `The value a property of ${owner} has when reset; null value and no type when it has none`,
      arg: propertyNameSchema,
      reply: z.nullable(z.object({ value: propertyValueSchema, type: propertyTypeSchema })),
      errors: notFound,
    }),
    Help: defineApi({
      ...common,
      method: `${prefix}.Help`,
      summary: `What a property of ${owner} means`,
      arg: propertyNameSchema,
      reply: z.object({ doc: z.string() }),
      errors: notFound,
    }),
    Set: defineApi({
      ...common,
      method: `${prefix}.Set`,
      summary: `Set a property of ${owner}; answered once the change is on disk`,
      arg: propertyNameSchema,
      payload: z.extend(ifRevisionSchema, { value: propertyValueSchema }),
      reply: revisionReplySchema,
      errors: writeErrors,
    }),
    Reset: defineApi({
      ...common,
      method: `${prefix}.Reset`,
      summary: `Reset a property of ${owner} to its default; answered once the change is on disk`,
      arg: propertyNameSchema,
      payload: z.optional(ifRevisionSchema),
      reply: revisionReplySchema,
      errors: writeErrors,
    }),
  };
}

export const AdminVmProperty = definePropertyApi('admin.vm.property', DestScope.Vm, 'a VM');
export const AdminProperty = definePropertyApi('admin.property', DestScope.Dom0, 'the system');
