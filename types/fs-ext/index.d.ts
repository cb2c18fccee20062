// fs-ext ships no types; only what qubes-bus uses is declared.
declare module 'fs-ext' {
  export function flock(fd: number, flags: 'sh' | 'ex' | 'shnb' | 'exnb' | 'un', callback: (err: NodeJS.ErrnoException | null) => void): void;
}
