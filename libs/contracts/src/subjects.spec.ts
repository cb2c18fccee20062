import { describe, expect, it } from '@jest/globals';
import * as z from 'zod/mini';
import { defineApi, defineEvent, defineInternal, DestScope } from './descriptors';
import { ALL_ENDPOINTS, ALL_EVENTS } from './catalog';
import { ServiceName, Subjects, subjectsOverlap } from './subjects';

describe('subjectsOverlap()', () => {
  it.each([
    ['qubes.api.dom0.admin.vm.List', 'qubes.api.dom0.admin.vm.List', true],
    ['qubes.api.*.admin.vm.List', 'qubes.api.dom0.admin.vm.List', true],
    ['qubes.api.*.admin.vm.List', 'qubes.api.*.admin.vm.Remove', false],
    ['qubes.vm.>', 'qubes.vm.work.domain-start', true],
    ['qubes.vm.>', 'qubes.vm', false],
    ['qubes.vm.*.property-set.*', 'qubes.vm.work.property-set', false],
    ['qubes.api.*.admin.vm.property.Get', 'qubes.api.*.admin.vm.property.GetAll', false],
    ['qubes.app.>', 'qubes.vm.>', false],
  ])('%s and %s overlap: %s', (a, b, expected) => {
    expect(subjectsOverlap(a, b)).toBe(expected);
    expect(subjectsOverlap(b, a)).toBe(expected);
  });
});

describe('subjects', () => {
  it('builds API subjects dest-first with the VM token', () => {
    expect(Subjects.api('my.work', 'admin.vm.property.Get')).toBe('qubes.api.my=2Ework.admin.vm.property.Get');
    expect(Subjects.apiAnyDest('admin.vm.List')).toBe('qubes.api.*.admin.vm.List');
    expect(Subjects.internal(ServiceName.Storage, 'vm-pre-start')).toBe('qubes.internal.storage.vm-pre-start');
    expect(Subjects.vmEvents('my.work')).toBe('qubes.vm.my=2Ework.>');
  });

  it('refuses a method holding a wildcard or an empty token', () => {
    expect(() => Subjects.api('work', 'admin.*.List')).toThrow('invalid method');
    expect(() => Subjects.api('work', 'admin..List')).toThrow('invalid method');
    expect(() => Subjects.api('bad name', 'admin.vm.List')).toThrow('invalid VM name');
  });

  it('builds event subjects with the qualifier as its own token, and patterns to match them', () => {
    const propertySet = defineEvent({
      name: 'property-set',
      scope: 'vm',
      qualifier: 'property name',
      summary: 'test',
      fields: z.object({ newvalue: z.string() }),
    });
    expect(propertySet.subject({ vm: 'my.work', qualifier: 'netvm' })).toBe('qubes.vm.my=2Ework.property-set.netvm');
    expect(propertySet.pattern()).toBe('qubes.vm.*.property-set.*');
    expect(propertySet.pattern({ vm: 'work' })).toBe('qubes.vm.work.property-set.*');
    expect(propertySet.qubesName('netvm')).toBe('property-set:netvm');
    expect(() => propertySet.subject({ vm: 'work' })).toThrow('needs a property name');

    const backupProgress = defineEvent({ name: 'backup-progress', scope: 'app', summary: 'test', fields: z.object({}) });
    expect(backupProgress.subject({})).toBe('qubes.app.backup-progress');
    expect(() => backupProgress.subject({ qualifier: 'x' })).toThrow('takes no qualifier');
  });

  it('keeps global calls on dom0', () => {
    const global = defineApi({
      method: 'admin.property.Get',
      service: ServiceName.VmRegistry,
      scope: DestScope.Dom0,
      summary: 'test',
      reply: z.string(),
      errors: [],
    });
    expect(global.pattern).toBe('qubes.api.dom0.admin.property.Get');
    expect(() => global.subject('work')).toThrow('global call');
    const internal = defineInternal({ method: 'vm-pre-start', service: ServiceName.Storage, summary: 't', reply: z.null(), errors: [] });
    expect(internal.subject()).toBe('qubes.internal.storage.vm-pre-start');
  });

  it('gives every endpoint and event of the contract a subject no other one shares', () => {
    const patterns = [...ALL_ENDPOINTS.map((e) => e.pattern), ...ALL_EVENTS.map((e) => e.pattern())];
    expect(patterns.length).toBeGreaterThan(0);
    for (let i = 0; i < patterns.length; i++) {
      for (let j = i + 1; j < patterns.length; j++) {
        expect([patterns[i], patterns[j], subjectsOverlap(patterns[i]!, patterns[j]!)]).toEqual([
          patterns[i],
          patterns[j],
          false,
        ]);
      }
    }
    const names = ALL_ENDPOINTS.map((e) => `${e.kind}:${e.kind === 'internal' ? `${e.service}.` : ''}${e.method}`);
    expect(new Set(names).size).toBe(names.length);
  });
});
