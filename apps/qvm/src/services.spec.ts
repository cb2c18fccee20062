import { describe, expect, it } from '@jest/globals';
import { UsageError } from './errors';
import { serviceFeatureValue, serviceRows, serviceState } from './services';

describe('qvm-service values', () => {
  it("stores on as '1' and off as '' in the service.<name> feature, whatever word says it", () => {
    for (const word of ['on', '1', 'yes', 'True', 'enable']) expect(serviceFeatureValue(word)).toBe('1');
    for (const word of ['off', '0', 'no', 'FALSE', 'disable']) expect(serviceFeatureValue(word)).toBe('');
    expect(() => serviceFeatureValue('maybe')).toThrow(UsageError);
  });

  it('reads any non-empty value as on, as Qubes does', () => {
    expect(serviceState('1')).toBe('on');
    expect(serviceState('0')).toBe('on');
    expect(serviceState('')).toBe('off');
  });

  it('lists only service features, by name, without the prefix', () => {
    expect(serviceRows({ 'service.cups': '', gui: '1', 'service.crond': '1', 'service.': '1' })).toEqual([
      ['crond', 'on'],
      ['cups', 'off'],
    ]);
  });
});
