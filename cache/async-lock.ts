/**
 * A FIFO mutex for async critical sections (space allocation, eviction, clear), so that
 * two allocators never both decide there is room for their block. `run` rejects only with
 * what `fn` throws; a failed section releases the lock.
 */
export class AsyncLock {
  private tail: Promise<void> = Promise.resolve();

  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn);
    this.tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }
}
