import * as z from 'zod/mini';
import { defineEvent } from '../descriptors';
import { propertyValueSchema, revisionSchema } from './common';
import { vmClassSchema } from './vm';

/**
 * Events of the registry, with Qubes' names (qubes/vm/qubesvm.py, qubes/app.py). Every event
 * of a change carries the revision the change made, so a manager knows which read it supersedes.
 */
export const DomainAdd = defineEvent({
  name: 'domain-add',
  scope: 'vm',
  summary: 'A VM was created',
  fields: z.object({ class: vmClassSchema, revision: revisionSchema }),
});

export const DomainDelete = defineEvent({
  name: 'domain-delete',
  scope: 'vm',
  summary: 'A VM was removed',
  fields: z.object({ class: vmClassSchema }),
});

const propertySetFields = z.object({
  name: z.string(),
  newvalue: propertyValueSchema,
  oldvalue: propertyValueSchema,
  revision: revisionSchema,
});

export const VmPropertySet = defineEvent({
  name: 'property-set',
  scope: 'vm',
  qualifier: 'property name',
  summary: "A VM's property was set",
  fields: propertySetFields,
});

export const VmPropertyReset = defineEvent({
  name: 'property-reset',
  scope: 'vm',
  qualifier: 'property name',
  summary: "A VM's property went back to its default (newvalue: the default)",
  fields: propertySetFields,
});

export const FeatureSet = defineEvent({
  name: 'domain-feature-set',
  scope: 'vm',
  qualifier: 'feature name',
  summary: 'A feature was set',
  fields: z.object({ feature: z.string(), value: z.string(), oldvalue: z.nullable(z.string()), revision: revisionSchema }),
});

export const FeatureDelete = defineEvent({
  name: 'domain-feature-delete',
  scope: 'vm',
  qualifier: 'feature name',
  summary: 'A feature was removed',
  fields: z.object({ feature: z.string(), revision: revisionSchema }),
});

export const TagAdd = defineEvent({
  name: 'domain-tag-add',
  scope: 'vm',
  qualifier: 'tag',
  summary: 'A tag was added',
  fields: z.object({ tag: z.string(), revision: revisionSchema }),
});

export const TagDelete = defineEvent({
  name: 'domain-tag-delete',
  scope: 'vm',
  qualifier: 'tag',
  summary: 'A tag was removed',
  fields: z.object({ tag: z.string(), revision: revisionSchema }),
});

export const AppPropertySet = defineEvent({
  name: 'property-set',
  scope: 'app',
  qualifier: 'property name',
  summary: 'A global property was set',
  fields: propertySetFields,
});

export const AppPropertyReset = defineEvent({
  name: 'property-reset',
  scope: 'app',
  qualifier: 'property name',
  summary: 'A global property went back to its default',
  fields: propertySetFields,
});

export const LabelAdd = defineEvent({
  name: 'label-add',
  scope: 'app',
  qualifier: 'label',
  summary: 'A label was created',
  fields: z.object({ label: z.string(), color: z.string(), index: z.number() }),
});

export const LabelRemove = defineEvent({
  name: 'label-remove',
  scope: 'app',
  qualifier: 'label',
  summary: 'A label was removed',
  fields: z.object({ label: z.string() }),
});
