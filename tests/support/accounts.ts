// Accounts for tests: made through the real sign-up procedure on an app under test (`buildApp` + `inject`; server
// downloads and other account-only procedures need one), or straight in its database with a session.
import type { FastifyInstance } from 'fastify';
import type { PrismaClient } from '../../src/server/db/client.ts';
import { createSession, sessionPolicy } from '../../src/server/services/session.ts';

/** Signs up `username` on `app`; returns the session cookie (`name=value`). Throws if the sign-up is refused. */
export async function signUpInjected(app: FastifyInstance, username: string): Promise<string> {
  const response = await app.inject({
    method: 'POST',
    url: '/api/trpc/auth.signup',
    payload: { username, password: 'download password' },
  });
  if (response.statusCode !== 200) throw new Error(`sign-up of ${username} answered ${response.statusCode}`);
  return String(response.headers['set-cookie']).split(';')[0] ?? '';
}

/** A new account with a session, as the cookie a client would send. */
export async function accountCookie(
  prisma: PrismaClient,
  username: string,
): Promise<{ cookie: string; userId: string }> {
  const user = await prisma.user.create({
    data: { kind: 'ACCOUNT', username, displayName: username },
    select: { id: true },
  });
  const { token } = await createSession(prisma, user.id, sessionPolicy(14, 90));
  return { cookie: `mesh_session=${token}`, userId: user.id };
}
