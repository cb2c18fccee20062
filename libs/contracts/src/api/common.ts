import * as z from 'zod/mini';

/**
 * A property value on the wire. Callers may send a typed value or a string, as Qubes' tools do
 * (`qvm-prefs work memory 800`): the registry converts by the property's type. Replies carry
 * typed values: VM references and labels as names, `null` for none.
 */
export const propertyValueSchema = z.union([z.string(), z.number(), z.boolean(), z.null()]);
export type PropertyValue = z.infer<typeof propertyValueSchema>;

/** The property types of the model (qubes/__init__.py property `type=`). */
export const PropertyType = {
  Str: 'str',
  Int: 'int',
  Bool: 'bool',
  Vm: 'vm',
  Label: 'label',
  Uuid: 'uuid',
  Ip: 'ip',
  Enum: 'enum',
} as const;
export type PropertyType = (typeof PropertyType)[keyof typeof PropertyType];
export const propertyTypeSchema = z.enum(Object.values(PropertyType) as [PropertyType, ...PropertyType[]]);

/**
 * Opaque revision of a VM (or of the global properties): changes with every write to it.
 * Deviation from Qubes, which has none: a write may carry the revision it read and then fails
 * with CONFLICT if someone wrote in between (optimistic concurrency, as Incus does with ETags).
 */
export const revisionSchema = z.string().check(z.minLength(1), z.maxLength(64));

/** Qubes' names of properties, features, tags and labels (qubes/api/admin.py, qubes/utils.py). */
export const propertyNameSchema = z.string().check(z.regex(/^[a-zA-Z_][a-zA-Z0-9_]{0,63}$/, 'is not a property name'));
export const featureNameSchema = z.string().check(z.regex(/^[a-zA-Z0-9_.-]{1,255}$/, 'is not a feature name'));
/** Feature values are printable ASCII (qubes/api/admin.py vm_feature_set). */
export const featureValueSchema = z.string().check(z.regex(/^[\x20-\x7E]*$/, 'may hold printable ASCII only'), z.maxLength(4096));
export const tagNameSchema = z.string().check(z.regex(/^[a-zA-Z0-9_.-]{1,255}$/, 'is not a tag name'));
export const labelNameSchema = z.string().check(z.regex(/^[a-zA-Z0-9_-]{1,32}$/, 'is not a label name'));
export const labelColorSchema = z.string().check(z.regex(/^0x[0-9a-fA-F]{6}$/, 'is not a colour 0xRRGGBB'));

/** A write may name the revision it read. */
export const ifRevisionSchema = z.object({ revision: z.optional(revisionSchema) });

export const propertyEntrySchema = z.object({
  value: propertyValueSchema,
  /** True when no value is set and the value shown is computed (from the template, a global). */
  default: z.boolean(),
  type: propertyTypeSchema,
});
export type PropertyEntry = z.infer<typeof propertyEntrySchema>;

export const revisionReplySchema = z.object({ revision: revisionSchema });
