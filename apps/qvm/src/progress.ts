import { formatSize } from './sizes';

/**
 * A progress bar on a terminal (stderr), redrawn at most ten times a second; nothing at all when
 * stderr is not a terminal (a script, a pipe), so output stays clean there.
 */
export function progressBar(stream: NodeJS.WritableStream & { isTTY?: boolean; columns?: number }, label: string): { update(done: number, total: number): void; end(): void } {
  if (stream.isTTY !== true) return { update: () => undefined, end: () => undefined };
  let last = 0;
  let drawn = false;
  const draw = (done: number, total: number): void => {
    const fraction = total > 0 ? Math.min(1, done / total) : 1;
    const text = ` ${Math.floor(fraction * 100)}% ${formatSize(done)}/${formatSize(total)}`;
    const width = Math.max(10, Math.min(40, (stream.columns ?? 80) - label.length - text.length - 4));
    const filled = Math.round(fraction * width);
    stream.write(`\r${label} [${'#'.repeat(filled)}${' '.repeat(width - filled)}]${text}`);
    drawn = true;
  };
  return {
    update(done, total) {
      const now = Date.now();
      if (done < total && now - last < 100) return;
      last = now;
      draw(done, total);
    },
    end() {
      if (drawn) stream.write('\n');
    },
  };
}
