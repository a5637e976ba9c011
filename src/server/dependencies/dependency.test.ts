import { describe, expect, it, vi } from 'vitest';
import { type DependencyChange, Dependency, DependencyUnavailableError, unavailability } from './dependency.ts';

/** A dependency whose probe answers as `answers` says, and the transitions it reported. */
function fake(options: { retryMs?: number } = {}) {
  const state = { answers: true, probes: 0 };
  const dependency = new Dependency('database', {
    probe: async () => {
      state.probes++;
      if (!state.answers) throw new Error('connection refused');
    },
    retryMs: options.retryMs ?? 5,
    probeTimeoutMs: 50,
  });
  const changes: DependencyChange['state'][] = [];
  dependency.onChange((change) => changes.push(change.state));
  return { state, dependency, changes };
}

describe('Dependency', () => {
  it('stays up when a suspected failure is not confirmed by a probe', async () => {
    const { dependency, changes, state } = fake();
    dependency.suspect();
    expect(await dependency.check()).toBe(true);
    expect(state.probes).toBe(1);
    expect(changes).toEqual([]);
  });

  it('refuses at once while down, reports each transition once, and is back within a retry of answering', async () => {
    const { dependency, changes, state } = fake();
    state.answers = false;
    expect(await dependency.check()).toBe(false);
    expect(() => dependency.assertUp()).toThrow(DependencyUnavailableError);
    // Many failed probes (the retry timer keeps probing): still one transition.
    await vi.waitFor(() => expect(state.probes).toBeGreaterThan(3));
    expect(changes).toEqual(['down']);

    state.answers = true;
    await dependency.whenUp();
    expect(changes).toEqual(['down', 'up']);
    expect(() => dependency.assertUp()).not.toThrow();
    dependency.close();
  });

  it('counts a probe that outlasts its timeout as failed', async () => {
    const dependency = new Dependency('redis', {
      probe: () => new Promise(() => {}),
      probeTimeoutMs: 20,
      retryMs: 10_000,
    });
    expect(await dependency.check()).toBe(false);
    expect(dependency.status().state).toBe('down');
    dependency.close();
  });

  it('fails a probe under way as soon as the connection is lost, even if its command is still queued', async () => {
    const dependency = new Dependency('redis', {
      probe: () => new Promise(() => {}),
      probeTimeoutMs: 60_000,
      retryMs: 10_000,
    });
    const probing = dependency.check();
    dependency.lost(new Error('socket closed'));
    expect(await probing).toBe(false);
    expect(dependency.up).toBe(false);
    dependency.close();
  });

  it('fails guarded work as soon as the dependency goes down, without waiting for the work', async () => {
    const { dependency } = fake({ retryMs: 10_000 });
    const stuck = dependency.guard(() => new Promise<never>(() => {}), 60_000);
    dependency.lost(new Error('socket closed'));
    const error = await stuck.catch((caught: unknown) => caught);
    expect(unavailability(error)).toMatchObject({ dependency: 'database', retryAfterSeconds: 1 });
    // While down, guarded work is refused before it starts.
    const started = vi.fn(async () => 1);
    await expect(dependency.guard(started, 60_000)).rejects.toBeInstanceOf(DependencyUnavailableError);
    expect(started).not.toHaveBeenCalled();
    dependency.close();
  });

  it('stops waiting when the signal aborts', async () => {
    const { dependency, state } = fake({ retryMs: 10_000 });
    state.answers = false;
    await dependency.check();
    const controller = new AbortController();
    const waiting = dependency.whenUp(controller.signal);
    controller.abort(new Error('shutting down'));
    await expect(waiting).rejects.toThrow('shutting down');
    dependency.close();
  });

  it('asks for longer waits as an outage lasts, up to 10 s', async () => {
    vi.useFakeTimers({ now: 0, toFake: ['Date'] });
    try {
      const { dependency } = fake({ retryMs: 10_000 });
      expect(dependency.retryAfterSeconds()).toBe(1);
      dependency.lost(new Error('gone'));
      expect(dependency.retryAfterSeconds()).toBe(1);
      vi.setSystemTime(35_000);
      expect(dependency.retryAfterSeconds()).toBe(4);
      vi.setSystemTime(600_000);
      expect(dependency.retryAfterSeconds()).toBe(10);
      dependency.close();
    } finally {
      vi.useRealTimers();
    }
  });

  it('finds the unavailability in a chain of causes', () => {
    const cause = new DependencyUnavailableError('redis', 2);
    expect(unavailability(new Error('wrapped', { cause: new Error('again', { cause }) }))).toBe(cause);
    expect(unavailability(new Error('a bug'))).toBeNull();
  });
});
