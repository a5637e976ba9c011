// Fair share of the server between client addresses: each address has at most REQUESTS_IN_FLIGHT_PER_IP requests
// being worked on at once; its further requests wait their turn (up to REQUESTS_QUEUED_PER_IP, then 429). One
// address flooding within its budgets then queues behind itself, not in front of everyone else: the embedded
// database runs one query at a time on the main thread, so a backlog of one address's queries would delay every
// other request and socket event until it drained (bench/abuse.ts measures this). See docs/SECURITY.md.
import type { FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Env } from '../env.ts';
import { addressKey } from '../socket/handshake-guard.ts';

interface Gate {
  running: number;
  waiting: Array<() => void>;
}

const release = Symbol('fair-share release');
type Gated = FastifyRequest & { [release]?: () => void };

export interface FairSharePluginOptions {
  env: Pick<Env, 'REQUESTS_IN_FLIGHT_PER_IP' | 'REQUESTS_QUEUED_PER_IP'>;
}

export const fairSharePlugin = fp<FairSharePluginOptions>(
  async (app, { env }) => {
    const gates = new Map<string, Gate>();

    app.addHook('onRequest', async (request: Gated, reply) => {
      const key = addressKey(request.ip);
      let gate = gates.get(key);
      if (!gate) {
        gate = { running: 0, waiting: [] };
        gates.set(key, gate);
      }
      const held = gate;
      if (held.running < env.REQUESTS_IN_FLIGHT_PER_IP) held.running++;
      else if (held.waiting.length >= env.REQUESTS_QUEUED_PER_IP) {
        return reply
          .code(429)
          .send({
            error: 'RATE_LIMITED',
            message: `Too many requests at once from this address: at most ${env.REQUESTS_QUEUED_PER_IP} may wait`,
          });
      } else {
        // The slot is handed over by the request that frees it (running stays the same).
        await new Promise<void>((resolve) => held.waiting.push(resolve));
      }
      let done = false;
      const free = () => {
        if (done) return;
        done = true;
        const next = held.waiting.shift();
        if (next) next();
        else if (--held.running === 0) gates.delete(key);
      };
      request[release] = free;
      // Freed when the answer starts (a stream or an SSE subscription holds no slot while it runs), or when the
      // client goes away first, even while it still waits for its turn.
      reply.raw.once('close', free);
      if (request.raw.destroyed) free();
      return undefined;
    });

    app.addHook('onSend', async (request: Gated, _reply, payload) => {
      request[release]?.();
      return payload;
    });
  },
  { name: 'fair-share' },
);
