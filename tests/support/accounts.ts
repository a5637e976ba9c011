// An account made through the real sign-up procedure on an app under test (`buildApp` + `inject`): server downloads
// and other account-only procedures need one.
import type { FastifyInstance } from 'fastify';

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
