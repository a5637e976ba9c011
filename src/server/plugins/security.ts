// Security headers, CORS and the cross-origin mutation guard (RELIABILITY 8).
import cors from '@fastify/cors';
import helmet from '@fastify/helmet';
import type { FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Env } from '../env.ts';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export interface SecurityPluginOptions {
  env: Pick<Env, 'NODE_ENV' | 'PUBLIC_ORIGIN'>;
}

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
    app.addHook('onRequest', async (request, reply) => {
      if (isCrossOriginMutation(request, allowed)) {
        await reply.code(403).send({ error: 'CROSS_ORIGIN', message: 'Cross-origin requests may not change state' });
      }
    });
  },
  { name: 'security' },
);
