import { QubesError } from '@qubes-bus/contracts';

/** The QubesError a promise rejects with; fails the test if it resolves or rejects otherwise. */
export async function rejectionOf(promise: Promise<unknown>): Promise<QubesError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof QubesError) return err;
    throw err;
  }
  throw new Error('expected a QubesError, but the call succeeded');
}

/** The QubesError a function throws; fails the test if it returns or throws otherwise. */
export function thrownBy(fn: () => unknown): QubesError {
  try {
    fn();
  } catch (err) {
    if (err instanceof QubesError) return err;
    throw err;
  }
  throw new Error('expected a QubesError, but the call returned');
}
