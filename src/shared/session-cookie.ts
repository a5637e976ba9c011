// The session cookie's names, for the server that sets it and for clients outside a browser (the headless peer)
// that carry it themselves.

export const SESSION_COOKIE = 'mesh_session';

/** Behind an https public origin the cookie is `__Host-` prefixed: Secure, Path=/ and no Domain, so no sibling
 * subdomain or plain-http page can set or overwrite it (cookie tossing). */
export const HOST_SESSION_COOKIE = `__Host-${SESSION_COOKIE}`;

/** A `Cookie` header with `token` under both names: a client cannot know whether the server's origin is https. */
export function sessionCookieHeader(token: string): string {
  return `${SESSION_COOKIE}=${token}; ${HOST_SESSION_COOKIE}=${token}`;
}

/** The `name=value` pair of a session cookie the server set in a `Set-Cookie` header, or null for any other. */
export function sessionFromSetCookie(setCookie: string | null): string | null {
  const pair = setCookie?.split(';')[0];
  const name = pair?.split('=')[0];
  return pair && (name === SESSION_COOKIE || name === HOST_SESSION_COOKIE) ? pair : null;
}
