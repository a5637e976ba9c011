// The one place a session is made: a guest identity on first use, so rooms, the mesh and cloud chat work before
// anyone signs up. Signing up later keeps what the guest did (the server moves it to the account).
import { trpc } from './trpc.ts';

export type Me = Awaited<ReturnType<typeof trpc.auth.me.query>>;

/**
 * The signed-in user (an account or a guest), made a guest first when there is none, unless `guest` is false: then
 * it rejects ("Not signed in"), for callers that must not make a new identity behind the person's back (after a
 * log-out).
 */
export async function ensureSession(options: { guest?: boolean } = {}): Promise<NonNullable<Me>> {
  const me = await trpc.auth.me.query();
  if (me) return me;
  if (options.guest === false) throw new Error('Not signed in');
  return trpc.auth.guest.mutate({});
}
