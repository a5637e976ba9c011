// Budgets for what costs the server work, money or storage, counted per IP and per user (docs/SECURITY.md):
// every tRPC call (a batch of ten counts ten), and the costly procedures each on budgets of their own.
// Counters live in this process (one node's share; with several nodes behind a balancer each holds its own).
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import type { Env } from '../env.ts';

export type BudgetName = 'call' | 'guest' | 'auth' | 'roomCreate' | 'download' | 'chat';

interface Rule {
  /** Points per user (or per IP for `call`, `guest` and `auth`, which have no user yet or guard the IP's work). */
  points: number;
  seconds: number;
  /** What the refusal says is spent, e.g. "new guests from this address". */
  what: string;
}

export type BudgetEnv = Pick<
  Env,
  | 'RATE_LIMIT_MAX'
  | 'RATE_LIMIT_WINDOW_MS'
  | 'GUEST_CREATIONS_PER_IP_PER_HOUR'
  | 'AUTH_ATTEMPTS_PER_IP_PER_MINUTE'
  | 'ROOM_CREATIONS_PER_USER_PER_HOUR'
  | 'DOWNLOADS_PER_USER_PER_HOUR'
  | 'CHATS_PER_USER_PER_MINUTE'
  | 'COSTLY_IP_FACTOR'
>;

function rules(env: BudgetEnv): Record<BudgetName, Rule> {
  return {
    call: { points: env.RATE_LIMIT_MAX, seconds: Math.ceil(env.RATE_LIMIT_WINDOW_MS / 1000), what: 'API calls from this address' },
    guest: { points: env.GUEST_CREATIONS_PER_IP_PER_HOUR, seconds: 3600, what: 'new guests from this address' },
    auth: { points: env.AUTH_ATTEMPTS_PER_IP_PER_MINUTE, seconds: 60, what: 'sign-up and sign-in attempts from this address' },
    roomCreate: { points: env.ROOM_CREATIONS_PER_USER_PER_HOUR, seconds: 3600, what: 'new rooms' },
    download: { points: env.DOWNLOADS_PER_USER_PER_HOUR, seconds: 3600, what: 'model downloads' },
    chat: { points: env.CHATS_PER_USER_PER_MINUTE, seconds: 60, what: 'chats' },
  };
}

export type Spend = { ok: true } | { ok: false; retryAfterMs: number; message: string };

export class Budgets {
  readonly #rules: Record<BudgetName, Rule>;
  readonly #limiters = new Map<string, RateLimiterMemory>();
  readonly #ipFactor: number;

  constructor(env: BudgetEnv) {
    this.#rules = rules(env);
    this.#ipFactor = env.COSTLY_IP_FACTOR;
  }

  /**
   * Spends one point of `name` for the IP and, when given, for the user. Per-user budgets also hold per IP, at
   * COSTLY_IP_FACTOR times the size (several people share an address behind NAT), so minting guests does not
   * buy a fresh budget.
   */
  async spend(name: BudgetName, who: { ip: string; userId?: string | undefined }): Promise<Spend> {
    const rule = this.#rules[name];
    const perUser = who.userId !== undefined && name !== 'call' && name !== 'guest' && name !== 'auth';
    const checks: Array<[string, number, string]> = perUser
      ? [
          [`${name}:user`, rule.points, `${who.userId}`],
          [`${name}:ip`, rule.points * this.#ipFactor, who.ip],
        ]
      : [[`${name}:ip`, rule.points, who.ip]];
    for (const [bucket, points, key] of checks) {
      try {
        await this.#limiter(bucket, points, rule.seconds).consume(key);
      } catch (refusal) {
        if (!(refusal instanceof RateLimiterRes)) throw refusal;
        const retryAfterMs = Math.max(refusal.msBeforeNext, 1000);
        const scope = bucket.endsWith(':ip') && perUser ? ' from this address' : '';
        return {
          ok: false,
          retryAfterMs,
          message: `Too many ${rule.what}${scope}: at most ${points} per ${describe(rule.seconds)}; retry in ${Math.ceil(retryAfterMs / 1000)} s`,
        };
      }
    }
    return { ok: true };
  }

  #limiter(bucket: string, points: number, seconds: number): RateLimiterMemory {
    let limiter = this.#limiters.get(bucket);
    if (!limiter) {
      limiter = new RateLimiterMemory({ keyPrefix: bucket, points, duration: seconds });
      this.#limiters.set(bucket, limiter);
    }
    return limiter;
  }
}

function describe(seconds: number): string {
  if (seconds === 3600) return 'hour';
  if (seconds === 60) return 'minute';
  return `${seconds} s`;
}
