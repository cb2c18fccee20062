import { describe, expect, it } from '@jest/globals';
import { formatSize, parseSize } from './sizes';

describe('sizes', () => {
  it('reads binary and decimal units as Qubes does, and bare bytes', () => {
    expect(parseSize('10G')).toBe(10 * 1024 ** 3);
    expect(parseSize('512MiB')).toBe(512 * 1024 ** 2);
    expect(parseSize('2GB')).toBe(2_000_000_000);
    expect(parseSize('4096')).toBe(4096);
    expect(parseSize('1.5g')).toBe(1.5 * 1024 ** 3);
  });

  it('refuses what is not a size', () => {
    expect(() => parseSize('ten')).toThrow(/not a size/);
    expect(() => parseSize('10X')).toThrow(/not a size/);
    expect(() => parseSize('-1G')).toThrow(/not a size/);
  });

  it('prints sizes in the largest unit that fits', () => {
    expect(formatSize(2 * 1024 ** 3)).toBe('2 GiB');
    expect(formatSize(1536 * 1024 ** 2)).toBe('1.5 GiB');
    expect(formatSize(100)).toBe('100 B');
  });
});
