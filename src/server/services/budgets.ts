// Budgets for what costs the server work, money or storage, counted per IP and per user (docs/SECURITY.md):
// every tRPC call (a batch of ten counts ten), and the costly procedures each on budgets of their own.
// Counters live in this process (one node's share; with several nodes behind a balancer each holds its own).
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import type { Env } from '../env.ts';

export type BudgetName = 'call' | 'guest' | 'auth' | 'roomCreate' | 'download' | 'modelAdd' | 'chat' | 'jobRecord';

interface Rule {
  /** Points per user (or per IP for `call`, `guest` and `auth`, which have no user yet or guard the IP's work). */
  points: number;
  seconds: number;
  /** What the refusal says is spent, e.g. "new guests from this address". */
  what: string;
  /**
   * Spread over the window (see `burstPoints`), not spendable all in its first second. Guests are not: creating
   * one is a single insert, and a class behind one address opens the app at once.
   */
  smooth: boolean;
  /** The smallest burst, when one request may rightly spend several points at once (a full tRPC batch). */
  minBurst?: number;
}

export type BudgetEnv = Pick<
  Env,
  | 'RATE_LIMIT_MAX'
  | 'RATE_LIMIT_WINDOW_MS'
  | 'GUEST_CREATIONS_PER_IP_PER_HOUR'
  | 'AUTH_ATTEMPTS_PER_IP_PER_MINUTE'
  | 'ROOM_CREATIONS_PER_USER_PER_HOUR'
  | 'DOWNLOADS_PER_USER_PER_HOUR'
  | 'MODEL_ADDS_PER_USER_PER_HOUR'
  | 'CHATS_PER_USER_PER_MINUTE'
  | 'COSTLY_IP_FACTOR'
  | 'RATE_LIMIT_BURST_SECONDS'
  | 'TRPC_MAX_BATCH_SIZE'
  | 'JOB_RECORDS_PER_MINUTE'
>;

/** Bursts are counted in windows this long: a second's burst arriving all at once would still be a stall. */
export const BURST_WINDOW_MS = 250;

/**
 * How much of a budget of `points` per `seconds` one BURST_WINDOW_MS may spend: its share of `burstSeconds`
 * seconds' worth of the budget's average rate (at least 1). Without it a flood spends a whole minute's budget in
 * its first second, which is the second everyone else waits in; with it the same budget arrives spread out.
 * `null` when that is the whole budget, or `burstSeconds` covers the whole window.
 */
export function burstPoints(points: number, seconds: number, burstSeconds: number, minBurst = 1): number | null {
  // A burst as long as the window is no smoothing at all (3600, the longest window, turns it off everywhere).
  if (burstSeconds >= seconds) return null;
  const burst = Math.max(minBurst, Math.ceil((points * burstSeconds * BURST_WINDOW_MS) / (seconds * 1000)));
  return burst < points ? burst : null;
}

function rules(env: BudgetEnv): Record<BudgetName, Rule> {
  return {
    call: {
      points: env.RATE_LIMIT_MAX,
      seconds: Math.ceil(env.RATE_LIMIT_WINDOW_MS / 1000),
      what: 'API calls from this address',
      smooth: true,
      minBurst: env.TRPC_MAX_BATCH_SIZE,
    },
    guest: {
      points: env.GUEST_CREATIONS_PER_IP_PER_HOUR,
      seconds: 3600,
      what: 'new guests from this address',
      smooth: false,
    },
    auth: {
      points: env.AUTH_ATTEMPTS_PER_IP_PER_MINUTE,
      seconds: 60,
      what: 'sign-up and sign-in attempts from this address',
      smooth: true,
    },
    roomCreate: { points: env.ROOM_CREATIONS_PER_USER_PER_HOUR, seconds: 3600, what: 'new rooms', smooth: true },
    download: { points: env.DOWNLOADS_PER_USER_PER_HOUR, seconds: 3600, what: 'model downloads', smooth: true },
    modelAdd: {
      points: env.MODEL_ADDS_PER_USER_PER_HOUR,
      seconds: 3600,
      what: 'models added by repo id',
      smooth: true,
    },
    chat: { points: env.CHATS_PER_USER_PER_MINUTE, seconds: 60, what: 'chats', smooth: true },
    // A job ends with its finish and check at once, and the next may start right after.
    jobRecord: { points: env.JOB_RECORDS_PER_MINUTE, seconds: 60, what: 'job records', smooth: true, minBurst: 4 },
  };
}

export type Spend = { ok: true } | { ok: false; retryAfterMs: number; message: string };

export class Budgets {
  readonly #rules: Record<BudgetName, Rule>;
  readonly #limiters = new Map<string, RateLimiterMemory>();
  readonly #ipFactor: number;
  readonly #burstSeconds: number;

  constructor(env: BudgetEnv) {
    this.#rules = rules(env);
    this.#ipFactor = env.COSTLY_IP_FACTOR;
    this.#burstSeconds = env.RATE_LIMIT_BURST_SECONDS;
  }

  /**
   * Spends one point of `name` for the IP and, when given, for the user. Per-user budgets also hold per IP, at
   * COSTLY_IP_FACTOR times the size (several people share an address behind NAT), so minting guests does not
   * buy a fresh budget. Each is also smoothed: at most its burst (RATE_LIMIT_BURST_SECONDS) in any one second.
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
      const burst = rule.smooth ? burstPoints(points, rule.seconds, this.#burstSeconds, rule.minBurst) : null;
      // The burst first: a refused second must not also spend the window's points.
      const limits: Array<[string, number, number]> = [
        ...(burst === null ? [] : [[`${bucket}:burst`, burst, BURST_WINDOW_MS / 1000] as [string, number, number]]),
        [bucket, points, rule.seconds],
      ];
      for (const [limiterName, limit, seconds] of limits) {
        try {
          await this.#limiter(limiterName, limit, seconds).consume(key);
        } catch (refusal) {
          if (!(refusal instanceof RateLimiterRes)) throw refusal;
          const retryAfterMs = Math.max(refusal.msBeforeNext, 1000);
          const scope = bucket.endsWith(':ip') && perUser ? ' from this address' : '';
          const rate =
            seconds < 1
              ? `${limit} in any ${BURST_WINDOW_MS} ms (${points} per ${describe(rule.seconds)})`
              : `${points} per ${describe(rule.seconds)}`;
          return {
            ok: false,
            retryAfterMs,
            message: `Too many ${rule.what}${scope}: at most ${rate}; retry in ${Math.ceil(retryAfterMs / 1000)} s`,
          };
        }
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
