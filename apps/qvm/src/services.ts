import { UsageError } from './errors';

/**
 * qvm-service keeps services as features `service.<name>` (Qubes R4): on is `1`, off is the
 * empty string, and any non-empty value reads as on (qubesadmin/features.py,
 * qubesadmin/tools/qvm_service.py).
 */
export const SERVICE_PREFIX = 'service.';

const ON_WORDS: ReadonlySet<string> = new Set(['1', 'yes', 'true', 'on', 'enable', 'enabled']);
const OFF_WORDS: ReadonlySet<string> = new Set(['0', 'no', 'false', 'off', 'disable', 'disabled']);

/** The feature value for `qvm-service VM SERVICE VALUE`: `1` for on, `''` for off. */
export function serviceFeatureValue(untrustedValue: string): '1' | '' {
  const word = untrustedValue.trim().toLowerCase();
  if (ON_WORDS.has(word)) return '1';
  if (OFF_WORDS.has(word)) return '';
  throw new UsageError(`${JSON.stringify(untrustedValue)} is not a service state: use on or off (1/0, yes/no, true/false, enable/disable)`);
}

/** How a service feature reads: `on` for any non-empty value. */
export function serviceState(featureValue: string): 'on' | 'off' {
  return featureValue === '' ? 'off' : 'on';
}

/** The services among a VM's features, sorted, as `[name, on|off]` rows. */
export function serviceRows(features: Readonly<Record<string, string>>): Array<[string, string]> {
  return Object.keys(features)
    .filter((f) => f.startsWith(SERVICE_PREFIX) && f.length > SERVICE_PREFIX.length)
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
    .map((f) => [f.slice(SERVICE_PREFIX.length), serviceState(features[f]!)]);
}
