// fs-ext ships no types; only what qubes-bus uses is declared.
declare module 'fs-ext' {
  export function flock(fd: number, flags: 'sh' | 'ex' | 'shnb' | 'exnb' | 'un', callback: (err: NodeJS.ErrnoException | null) => void): void;
  /** Only ever with a non-blocking flag: a blocking flockSync would freeze the event loop. */
  export function flockSync(fd: number, flags: 'shnb' | 'exnb' | 'un'): void;
}
