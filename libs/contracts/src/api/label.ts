import * as z from 'zod/mini';
import { defineApi, DestScope } from '../descriptors';
import { ServiceName } from '../subjects';
import { labelColorSchema, labelNameSchema } from './common';

const common = { service: ServiceName.VmRegistry, scope: DestScope.Dom0 } as const;

export const labelSchema = z.object({ name: z.string(), color: z.string(), index: z.number() });
export type LabelInfo = z.infer<typeof labelSchema>;

/** `admin.label.*`: the coloured labels VMs wear; the eight built-in ones cannot be removed. */
export const AdminLabel = {
  List: defineApi({
    ...common,
    method: 'admin.label.List',
    summary: 'Every label with its colour and index',
    reply: z.object({ labels: z.array(labelSchema) }),
    errors: [],
  }),
  Get: defineApi({
    ...common,
    method: 'admin.label.Get',
    summary: "A label's colour (0xRRGGBB)",
    arg: labelNameSchema,
    reply: z.object({ color: z.string() }),
    errors: ['LABEL_NOT_FOUND'],
  }),
  Index: defineApi({
    ...common,
    method: 'admin.label.Index',
    summary: "A label's index",
    arg: labelNameSchema,
    reply: z.object({ index: z.number() }),
    errors: ['LABEL_NOT_FOUND'],
  }),
  Create: defineApi({
    ...common,
    method: 'admin.label.Create',
    summary: 'Create a label; payload: its colour 0xRRGGBB',
    arg: labelNameSchema,
    payload: labelColorSchema,
    reply: z.null(),
    errors: ['LABEL_EXISTS'],
  }),
  Remove: defineApi({
    ...common,
    method: 'admin.label.Remove',
    summary: 'Remove a label no VM uses',
    arg: labelNameSchema,
    reply: z.null(),
    errors: ['LABEL_NOT_FOUND', 'LABEL_IN_USE'],
  }),
} as const;
