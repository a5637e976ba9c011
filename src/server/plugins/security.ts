// Security headers, CORS, the Host guard, and the cross-origin guards (mutations anywhere, every API call made by
// another site's page). See docs/SECURITY.md.
import cors from '@fastify/cors';
import helmet from '@fastify/helmet';
import type { FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Env } from '../env.ts';
import { hostAllowed, hostPolicy } from '../net/host-guard.ts';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export interface SecurityPluginOptions {
  env: Pick<Env, 'NODE_ENV' | 'PUBLIC_ORIGIN' | 'ALLOWED_HOSTS' | 'HOST'>;
}

/** The API answers pages' fetches only: tRPC (queries and subscriptions too, which can spend) and the OpenAI-style API. */
const isApiPath = (url: string) => /^\/(api\/trpc|v1)(\/|\?|$)/.test(url);

/** The origin the request was addressed to, as a browser on this server would send it in `Origin`. */
export function requestOrigin(request: FastifyRequest): string {
  return `${request.protocol}://${request.host}`;
}

/**
 * A state-changing request made by a browser on another site is refused. Browsers send `Origin` on every
 * non-GET fetch and `Sec-Fetch-Site` on all requests; non-browser clients (curl, the headless peer) send
 * neither and are not exposed to CSRF, so they pass.
 */
export function isCrossOriginMutation(request: FastifyRequest, allowed: ReadonlySet<string>): boolean {
  if (SAFE_METHODS.has(request.method)) return false;
  const origin = request.headers.origin;
  if (origin !== undefined) return !(allowed.has(origin) || origin === requestOrigin(request));
  const site = request.headers['sec-fetch-site'];
  return site !== undefined && site !== 'same-origin' && site !== 'none';
}

/**
 * An API call a browser made for another site's page (a link, an <img>, a form, a fetch from another origin), GETs
 * and subscriptions included: `chat.stream` spends provider credit. Fetch metadata says who asked: a page on
 * another site (`cross-site`), or on another origin of this site (`same-site`) unless that origin is allowed; and a
 * destination other than `empty` is a navigation, frame or subresource, never the app's own fetch or EventSource.
 * Clients that send no fetch metadata (curl, SDKs, the headless peer) are not browsers and carry no ambient cookies
 * from a victim.
 */
export function isCrossSiteApiCall(request: FastifyRequest, allowed: ReadonlySet<string>): boolean {
  if (!isApiPath(request.url)) return false;
  const site = request.headers['sec-fetch-site'];
  const dest = request.headers['sec-fetch-dest'];
  if (dest !== undefined && dest !== 'empty') return true;
  if (site === 'cross-site' || site === 'same-site') {
    const origin = request.headers.origin;
    return origin === undefined || !allowed.has(origin);
  }
  return false;
}

export const securityPlugin = fp<SecurityPluginOptions>(
  async (app, { env }) => {
    const allowed = new Set(env.PUBLIC_ORIGIN ? [env.PUBLIC_ORIGIN] : []);
    await app.register(helmet, {
      // Vite's dev server injects inline scripts for hot reload; production gets the strict policy.
      contentSecurityPolicy:
        env.NODE_ENV === 'development'
          ? false
          : {
              directives: {
                defaultSrc: ["'self'"],
                // ONNX Runtime compiles WebAssembly; nothing else is evaluated.
                scriptSrc: ["'self'", "'wasm-unsafe-eval'"],
                workerSrc: ["'self'", 'blob:'],
                connectSrc: ["'self'"],
                imgSrc: ["'self'", 'data:', 'blob:'],
                styleSrc: ["'self'", "'unsafe-inline'"],
                objectSrc: ["'none'"],
                frameAncestors: ["'none'"],
                upgradeInsecureRequests: null,
              },
            },
      // Same-origin resources only; the app never embeds other sites' content.
      crossOriginResourcePolicy: { policy: 'same-origin' },
      hsts: env.PUBLIC_ORIGIN?.startsWith('https:') ? undefined : false,
    });
    // Only PUBLIC_ORIGIN (when it differs from the serving origin) may call the API from a browser.
    await app.register(cors, {
      origin: (origin, callback) => callback(null, origin !== undefined && allowed.has(origin)),
      credentials: true,
      methods: ['GET', 'POST'],
      maxAge: 600,
    });
    const hosts = hostPolicy({ publicOrigin: env.PUBLIC_ORIGIN, allowedHosts: env.ALLOWED_HOSTS, host: env.HOST });
    app.addHook('onRequest', async (request, reply) => {
      // Before anything else: a page reaching this server under a name it does not serve is DNS rebinding.
      if (!hostAllowed(hosts, request.headers.host)) {
        await reply
          .code(421)
          .send({
            error: 'HOST_NOT_ALLOWED',
            message: 'This server does not answer to that host name; add it to ALLOWED_HOSTS',
          });
        return;
      }
      if (isCrossOriginMutation(request, allowed)) {
        await reply.code(403).send({ error: 'CROSS_ORIGIN', message: 'Cross-origin requests may not change state' });
        return;
      }
      if (isCrossSiteApiCall(request, allowed)) {
        await reply
          .code(403)
          .send({
            error: 'CROSS_SITE',
            message: "The API answers this app's own pages only, not links, frames or other sites",
          });
      }
    });
  },
  { name: 'security' },
);
