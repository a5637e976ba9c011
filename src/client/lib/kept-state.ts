// State that outlives the component showing it, for the tab's lifetime: the chat keeps its conversation, draft and
// running answer while a person looks at another screen, and an answer streaming meanwhile goes on landing in it,
// shown by whichever component mounts next. `forgetKeptState` drops it all (a sign-in or sign-out: one person's
// conversation is not shown to the next, and an answer still streaming for them writes nowhere).
import { useCallback, useSyncExternalStore } from 'react';

const kept = new Map<string, unknown>();
const listeners = new Map<string, Set<() => void>>();
/** Bumped by forgetKeptState: a setter made before it writes nothing. */
let generation = 0;

export type KeptSetter<T> = (next: T | ((current: T) => T)) => void;

function read<T>(key: string, initial: () => T): T {
  if (!kept.has(key)) kept.set(key, initial());
  return kept.get(key) as T;
}

/** Like useState, but the value stays under `key` when the component unmounts, and comes back when one mounts. */
export function useKeptState<T>(key: string, initial: () => T): [T, KeptSetter<T>] {
  const subscribe = useCallback(
    (listener: () => void) => {
      const set = listeners.get(key) ?? new Set();
      listeners.set(key, set);
      set.add(listener);
      return () => set.delete(listener);
    },
    [key],
  );
  const value = useSyncExternalStore(subscribe, () => read(key, initial));
  const made = generation;
  const set = useCallback<KeptSetter<T>>(
    (next) => {
      if (made !== generation) return;
      const current = read(key, initial);
      kept.set(key, typeof next === 'function' ? (next as (current: T) => T)(current) : next);
      listeners.get(key)?.forEach((listener) => listener());
    },
    // `initial` only seeds a missing value; a new one each render changes nothing.
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [key, made],
  );
  return [value, set];
}

/** A box kept the same way (the answer running now, which Stop reaches from a later mount); not a hook. */
export function keptBox<T>(key: string, initial: T): { current: T } {
  return read(key, () => ({ current: initial }));
}

/** Forgets every kept value: the next component to mount starts afresh. */
export function forgetKeptState(): void {
  generation += 1;
  kept.clear();
  listeners.forEach((set) => set.forEach((listener) => listener()));
}
