import { PropertyType, QubesError, type PropertyValue, type VmClass } from '@qubes-bus/contracts';
import type { StoredValue } from './domain';
import type { Label } from './labels';
import type { PropertyDef } from './property-table';

/** What turning a value to or from its stored form looks up: labels, and the VMs a value names. */
export interface CodecScope {
  label(nameOrId: string): Label;
  exists(vm: string): boolean;
  classOf(vm: string): VmClass;
}

const TRUE_WORDS = new Set(['true', 'yes', 'on', '1']);
const FALSE_WORDS = new Set(['false', 'no', 'off', '0']);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Characters XML 1.0 allows (qubes.xml must stay readable by Qubes' own lxml). */
const XML_TEXT = /^[\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]*$/u;
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** A stored value as its type; throws when the file holds something the type cannot be. */
export function fromStored(scope: CodecScope, def: PropertyDef, stored: StoredValue): PropertyValue {
  if (def.type === PropertyType.Label) return scope.label(stored.ref ?? stored.text ?? '').name;
  const text = stored.text ?? '';
  switch (def.type) {
    case PropertyType.Int:
      if (text === '' && def.allowNone) return null;
      if (!/^-?\d+$/.test(text)) throw new QubesError('PROPERTY_TYPE_INVALID', `${def.name}: ${JSON.stringify(text)} is not an integer`);
      return Number(text);
    case PropertyType.Bool:
      return parseBool(def, text);
    case PropertyType.Vm:
    case PropertyType.Ip:
      return text === '' ? null : text;
    default:
      return text === '' && def.allowNone ? null : text;
  }
}

/** A value of the property's type as qubes.xml stores it. */
export function toStored(scope: CodecScope, def: PropertyDef, value: PropertyValue): StoredValue {
  if (def.type === PropertyType.Label) return { ref: `label-${scope.label(value as string).index}` };
  if (value === null) return { text: '' };
  if (def.type === PropertyType.Bool) return { text: value ? 'True' : 'False' };
  return { text: String(value) };
}

/** Turns an untrusted value (typed, or a string as a user types it) into the property's type. */
export function coerce(scope: CodecScope, def: PropertyDef, untrusted: PropertyValue): PropertyValue {
  const typeError = (what: string) =>
    new QubesError('PROPERTY_TYPE_INVALID', `${def.name}: ${JSON.stringify(untrusted)} is not ${what}`, { details: { property: def.name } });
  if (untrusted === null || (untrusted === '' && (def.type !== PropertyType.Str || def.allowNone))) {
    if (!def.allowNone) throw new QubesError('PROPERTY_VALUE_INVALID', `${def.name} cannot be none`, { details: { property: def.name } });
    return null;
  }
  switch (def.type) {
    case PropertyType.Int: {
      const n = typeof untrusted === 'number' ? untrusted : typeof untrusted === 'string' && /^-?\d{1,15}$/.test(untrusted.trim()) ? Number(untrusted) : NaN;
      if (!Number.isSafeInteger(n)) throw typeError('an integer');
      return n;
    }
    case PropertyType.Bool:
      if (typeof untrusted === 'boolean') return untrusted;
      if (typeof untrusted === 'string') return parseBool(def, untrusted, typeError);
      throw typeError('True or False');
    case PropertyType.Vm: {
      if (typeof untrusted !== 'string') throw typeError('a VM name');
      if (!scope.exists(untrusted)) throw new QubesError('PROPERTY_VALUE_INVALID', `${def.name}: no VM is named ${untrusted}`, { details: { property: def.name } });
      const klass = scope.classOf(untrusted);
      if (def.vmClasses !== undefined && !def.vmClasses.includes(klass)) {
        throw new QubesError(
          def.name === 'template' || def.name === 'default_template' ? 'TEMPLATE_CLASS_INVALID' : 'PROPERTY_VALUE_INVALID',
          `${def.name}: ${untrusted} is a ${klass}, not a ${def.vmClasses.join(' or ')}`,
          { details: { property: def.name } },
        );
      }
      return untrusted;
    }
    case PropertyType.Label:
      if (typeof untrusted !== 'string') throw typeError('a label');
      return scope.label(untrusted).name;
    case PropertyType.Enum: {
      const text = typeof untrusted === 'string' ? untrusted.toLowerCase() : '';
      if (!def.values?.includes(text)) throw typeError(`one of ${def.values?.join(', ')}`);
      return text;
    }
    case PropertyType.Uuid:
      if (typeof untrusted !== 'string' || !UUID.test(untrusted)) throw typeError('a UUID');
      return untrusted.toLowerCase();
    case PropertyType.Ip:
      if (typeof untrusted !== 'string' || !IPV4.test(untrusted)) throw typeError('an IPv4 address');
      return untrusted;
    default:
      if (typeof untrusted === 'boolean') throw typeError('text');
      if (/[\n\r]/.test(String(untrusted)) || !XML_TEXT.test(String(untrusted))) {
        throw new QubesError('PROPERTY_VALUE_INVALID', `${def.name} can hold neither line breaks nor control characters`, { details: { property: def.name } });
      }
      return String(untrusted);
  }
}

function parseBool(def: PropertyDef, text: string, error?: (what: string) => QubesError): boolean {
  const word = text.trim().toLowerCase();
  if (TRUE_WORDS.has(word)) return true;
  if (FALSE_WORDS.has(word)) return false;
  throw error?.('True or False') ?? new QubesError('PROPERTY_TYPE_INVALID', `${def.name}: ${JSON.stringify(text)} is not True or False`);
}
