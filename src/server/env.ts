// The only reader of process.env on the server. Every variable has an embedded default, so a fresh machine
// starts with no configuration at all; a bad value stops start-up with one line naming the variable.
// Past 300 lines because every variable is here with its default and its reason: one file to read for
// `.env.example` and the README's table.
import path from 'node:path';
import ipaddr from 'ipaddr.js';
import { z } from 'zod';
import { DEFAULT_ICE_SERVERS } from '../shared/rtc/default-ice-servers.ts';

/** The trimmed, non-empty items of a comma-separated value. */
const splitList = (value: string) =>
  value
    .split(',')
    .map((item) => item.trim())
    .filter(Boolean);

const integer = (min: number, max: number) =>
  z
    .string()
    .trim()
    .regex(/^\d+$/, `expected an integer from ${min} to ${max}`)
    .transform(Number)
    .pipe(z.number().int().min(min, `expected at least ${min}`).max(max, `expected at most ${max}`));

const boolean = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'], { error: 'expected true or false' })
  .transform((value) => value === 'true' || value === '1' || value === 'yes');

const postgresUrl = z
  .string()
  .trim()
  .refine((value) => /^postgres(ql)?:\/\/.+/.test(value), 'expected a postgres:// or postgresql:// URL');

const redisUrl = z
  .string()
  .trim()
  .refine((value) => /^rediss?:\/\/.+/.test(value) && URL.canParse(value), 'expected a redis:// or rediss:// URL');

const origin = z
  .string()
  .trim()
  .url('expected an origin such as https://mesh.example.org')
  .transform((value) => new URL(value))
  .refine((url) => url.protocol === 'http:' || url.protocol === 'https:', 'expected an http or https origin')
  .transform((url) => url.origin);

/** An OpenAI-compatible API root such as https://api.openai.com/v1 (no trailing slash). */
const apiBaseUrl = z
  .string()
  .trim()
  .url('expected an http or https URL such as https://api.openai.com/v1')
  .refine((value) => /^https?:\/\//i.test(value), 'expected an http or https URL')
  .transform((value) => value.replace(/\/+$/, ''));

/**
 * TRUST_PROXY: `false` (no proxy), a hop count (`true` is one hop: one reverse proxy), or a comma-separated list of
 * the proxies' addresses or CIDRs (or `loopback`, `linklocal`, `uniquelocal`). Trusting every hop is not offered: a
 * client could then choose its own address by sending X-Forwarded-For.
 */
const trustProxy = z
  .string()
  .trim()
  .transform((value, ctx): false | number | string[] => {
    if (/^(false|no|0)$/i.test(value)) return false;
    if (/^(true|yes)$/i.test(value)) return 1;
    if (/^\d+$/.test(value)) {
      const hops = Number(value);
      if (hops <= 16) return hops;
      ctx.addIssue({ code: 'custom', message: 'expected at most 16 proxy hops' });
      return z.NEVER;
    }
    const list = splitList(value);
    const bad = list.find((item) => !/^(loopback|linklocal|uniquelocal)$/.test(item) && !isAddressOrCidr(item));
    if (list.length === 0 || list.length > 64 || bad !== undefined) {
      ctx.addIssue({
        code: 'custom',
        message: `expected false, a hop count, or proxy addresses/CIDRs${bad ? ` (not an address: ${bad})` : ''}`,
      });
      return z.NEVER;
    }
    return list;
  });

function isAddressOrCidr(value: string): boolean {
  if (ipaddr.isValid(value)) return true;
  try {
    ipaddr.parseCIDR(value);
    return true;
  } catch {
    return false;
  }
}

/** At most `max` comma-separated items, each checked by `item` (lower-cased first with `lowerCase`). */
const commaList = (item: z.ZodString, max: number, { lowerCase = false } = {}) =>
  z
    .string()
    .transform((value) => splitList(lowerCase ? value.toLowerCase() : value))
    .pipe(z.array(item).max(max));

/** Comma-separated host names (no scheme, no port). */
const hostList = commaList(
  z.string().regex(/^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/, 'expected host names such as mesh.example.org'),
  64,
  { lowerCase: true },
);

/** Comma-separated catalogue model ids (the server checks them against its catalogue when it starts). */
const modelIdList = commaList(
  z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, 'expected model ids such as nano-shakespeare'),
  8,
);

/** Comma-separated usernames, as sign-up stores them (lower-cased). */
const usernameList = commaList(z.string().regex(/^[a-z0-9_-]{3,32}$/, 'expected usernames such as ada,grace'), 256, {
  lowerCase: true,
});

/** RTCIceServer[] as JSON, e.g. [{"urls":"stun:stun.example.org:3478"},{"urls":"turn:...","username":"u","credential":"p"}]. */
const iceServers = z
  .string()
  .transform((text, ctx) => {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      ctx.addIssue({ code: 'custom', message: 'expected JSON' });
      return z.NEVER;
    }
  })
  .pipe(
    z
      .array(
        z
          .object({
            urls: z.union([
              z
                .string()
                .regex(/^(stun|stuns|turn|turns):/, 'ICE server URLs start with stun:, stuns:, turn: or turns:'),
              z
                .array(z.string().regex(/^(stun|stuns|turn|turns):/))
                .min(1)
                .max(8),
            ]),
            username: z.string().max(256).optional(),
            credential: z.string().max(256).optional(),
          })
          .strict(),
      )
      .max(8),
  );

/** Goes into an Authorization header: printable ASCII only, so a stray newline cannot forge headers. */
const apiKey = z
  .string()
  .trim()
  .max(512, 'expected at most 512 characters')
  .regex(/^[\x21-\x7e]+$/, 'expected a key of printable characters without spaces');

/** A provider's model allow-list: `*` for any model, else comma-separated names as chat input accepts them. */
const modelList = z.string().transform((value, ctx): '*' | string[] => {
  const names = splitList(value);
  if (names.length === 1 && names[0] === '*') return '*';
  const bad = names.find((name) => name.length > 128 || !/^[A-Za-z0-9][A-Za-z0-9._:/@-]*$/.test(name));
  if (names.length === 0 || names.length > 256 || bad !== undefined) {
    ctx.addIssue({
      code: 'custom',
      message: `expected * or comma-separated model names${bad === undefined ? '' : ` (not a model name: ${bad})`}`,
    });
    return z.NEVER;
  }
  return names;
});

/** Never echoed in the start-up error, which lands in logs. */
const SECRET_VARIABLES = new Set(['HF_TOKEN', 'OPENAI_API_KEY', 'OPENROUTER_API_KEY', 'ICE_SERVERS', 'REDIS_URL']);

export const EnvSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  HOST: z.string().trim().min(1).default('127.0.0.1'),
  PORT: integer(0, 65535).default(8787),
  DATA_DIR: z.string().trim().min(1).default('./data'),
  DATABASE_URL: postgresUrl.optional(),
  DATABASE_POOL_SIZE: integer(1, 100).default(10),
  /** Socket.IO between server nodes (Redis streams adapter); unset, one node keeps rooms in memory. */
  REDIS_URL: redisUrl.optional(),
  /** Starts this deployment's stream, channel and session key names, so several can share one Redis. */
  REDIS_KEY_PREFIX: z
    .string()
    .trim()
    .regex(/^[A-Za-z0-9][A-Za-z0-9:._-]{0,63}$/, 'expected up to 64 letters, digits, :, ., _ or -')
    .default('mesh'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** `auto`: readable lines when stdout is a terminal, JSON lines otherwise (src/server/log-format.ts). */
  LOG_FORMAT: z.enum(['auto', 'pretty', 'json']).default('auto'),
  PUBLIC_ORIGIN: origin.optional(),
  TRUST_PROXY: trustProxy.default(false),
  /** Host names served besides localhost, IP literals and PUBLIC_ORIGIN's host (DNS rebinding, docs/SECURITY.md). */
  ALLOWED_HOSTS: hostList.default([]),
  CLIENT_DIST_DIR: z.string().trim().min(1).default('./dist'),
  BODY_LIMIT_BYTES: integer(1024, 64 * 1024 * 1024).default(1024 * 1024),
  RATE_LIMIT_MAX: integer(1, 1_000_000).default(600),
  RATE_LIMIT_WINDOW_MS: integer(1000, 3_600_000).default(60_000),
  /** How long a refusal (429, or a refused socket handshake) waits before it is sent: slows a flood to its connections. */
  RATE_LIMIT_DELAY_MS: integer(0, 60_000).default(1000),
  /**
   * Budgets are smoothed: any one second may spend this many seconds' worth of a budget's average rate (at least 3),
   * so a flood cannot spend a minute's budget in its first second. 3600 turns smoothing off.
   */
  RATE_LIMIT_BURST_SECONDS: integer(1, 3600).default(3),
  /** Requests of one address worked on at once; more wait their turn (at most REQUESTS_QUEUED_PER_IP, then 429). */
  REQUESTS_IN_FLIGHT_PER_IP: integer(1, 10_000).default(4),
  REQUESTS_QUEUED_PER_IP: integer(0, 100_000).default(256),
  /** Calls in one tRPC batch request; each call also counts against RATE_LIMIT_MAX. */
  TRPC_MAX_BATCH_SIZE: integer(1, 100).default(10),
  /** Budgets of the costly procedures (docs/SECURITY.md); per-user ones hold per IP too, COSTLY_IP_FACTOR times larger. */
  GUEST_CREATIONS_PER_IP_PER_HOUR: integer(1, 1_000_000).default(20),
  AUTH_ATTEMPTS_PER_IP_PER_MINUTE: integer(1, 1_000_000).default(20),
  ROOM_CREATIONS_PER_USER_PER_HOUR: integer(1, 1_000_000).default(10),
  DOWNLOADS_PER_USER_PER_HOUR: integer(1, 1_000_000).default(10),
  /** models.add calls (each asks the Hub several questions) per account. */
  MODEL_ADDS_PER_USER_PER_HOUR: integer(1, 1_000_000).default(10),
  CHATS_PER_USER_PER_MINUTE: integer(1, 1_000_000).default(20),
  COSTLY_IP_FACTOR: integer(1, 1000).default(4),
  REQUEST_TIMEOUT_MS: integer(1000, 3_600_000).default(30_000),
  CONNECTION_TIMEOUT_MS: integer(1000, 3_600_000).default(60_000),
  KEEP_ALIVE_TIMEOUT_MS: integer(1000, 600_000).default(72_000),
  SHUTDOWN_TIMEOUT_MS: integer(1000, 600_000).default(10_000),
  SESSION_IDLE_DAYS: integer(1, 365).default(14),
  SESSION_MAX_DAYS: integer(1, 3650).default(90),
  /** Failed sign-ins per username and address before each further one doubles the wait (an address: 10 times as many). */
  LOGIN_MAX_FAILURES: integer(1, 100).default(5),
  /** The longest wait between sign-in attempts that those delays reach; nobody is ever locked out for good. */
  LOGIN_LOCKOUT_SECONDS: integer(1, 86_400).default(900),
  /** Usernames allowed to remove cached models from the server (create those accounts before listing them). */
  OPERATORS: usernameList.default([]),
  /** Rooms one account may own. */
  ROOMS_PER_ACCOUNT: integer(1, 100_000).default(20),
  /** Guests with no activity for this long are deleted, with what they own (their sessions, jobs, memberships). */
  GUEST_RETENTION_DAYS: integer(1, 3650).default(30),
  /** How often expired sessions and idle guests are purged (first run shortly after start); 0 turns it off. */
  HOUSEKEEPING_INTERVAL_MS: integer(0, 7 * 86_400_000)
    .refine((ms) => ms === 0 || ms >= 1000, 'expected 0 (off) or at least 1000')
    .default(3_600_000),
  HF_ENDPOINT: origin.default('https://huggingface.co'),
  HF_TOKEN: apiKey.optional(),
  MODEL_CACHE_DIR: z.string().trim().min(1).optional(),
  MANIFEST_PATH: z.string().trim().min(1).optional(),
  /** Models one account may add to its catalogue by repo id (models.add). */
  MODELS_ADDED_PER_ACCOUNT: integer(0, 10_000).default(20),
  /** Repos models.add accepts, as a regular expression on `owner/name` (e.g. `^onnx-community/`); unset: any. */
  MODEL_ADD_REPO_PATTERN: z
    .string()
    .trim()
    .max(256)
    .refine((pattern) => {
      try {
        new RegExp(pattern);
        return true;
      } catch {
        return false;
      }
    }, 'expected a regular expression')
    .optional(),
  DOWNLOAD_CONCURRENCY: integer(1, 16).default(2),
  DOWNLOAD_STALL_TIMEOUT_MS: integer(1000, 600_000).default(30_000),
  DOWNLOAD_MAX_REDIRECTS: integer(0, 10).default(5),
  /** Kept free on the cache's disk after a download, on top of the download itself. */
  DOWNLOAD_DISK_MARGIN_BYTES: integer(0, Number.MAX_SAFE_INTEGER).default(512 * 1024 * 1024),
  OPENAI_API_KEY: apiKey.optional(),
  OPENAI_BASE_URL: apiBaseUrl.default('https://api.openai.com/v1'),
  OPENROUTER_API_KEY: apiKey.optional(),
  OPENROUTER_BASE_URL: apiBaseUrl.default('https://openrouter.ai/api/v1'),
  /** The Hub's OpenAI-compatible inference router; its key is HF_TOKEN. */
  HF_INFERENCE_BASE_URL: apiBaseUrl.default('https://router.huggingface.co/v1'),
  /** A provider silent this long (before its first byte, or between chunks) fails the chat with UPSTREAM_TIMEOUT. */
  CHAT_UPSTREAM_TIMEOUT_MS: integer(100, 600_000).default(30_000),
  CHAT_MAX_STREAMS_PER_USER: integer(1, 100).default(3),
  /** Provider chats running at once in this process, everyone together; more are refused with SERVER_BUSY. */
  CHAT_MAX_STREAMS: integer(1, 100_000).default(64),
  /** Guests may use the providers that cost money (the free stub is always open to them). */
  CHAT_PROVIDERS_FOR_GUESTS: boolean.default(false),
  /** Catalogue models this server loads itself (onnxruntime-node) and shares into the global room, so /v1 answers on them with no browser open. */
  SERVE_MODELS: modelIdList.default([]),
  /** /v1 mesh streams one account may have open through this server, running or waiting for a peer; more get 429. */
  MESH_API_STREAMS_PER_USER: integer(1, 256).default(16),
  /** How long a /v1 mesh job waits for a free place at the room's peers before 503 (every peer busy). */
  MESH_API_WAIT_MS: integer(0, 600_000).default(30_000),
  /** Provider tokens one person may spend per UTC day; then USER_BUDGET_SPENT until 00:00 UTC. */
  CHAT_DAILY_TOKENS_PER_USER: integer(0, 2_000_000_000).default(100_000),
  /** Provider tokens the whole server (all nodes sharing the database) may spend per UTC day; then SERVER_BUDGET_SPENT. */
  CHAT_DAILY_TOKENS: integer(0, 2_000_000_000).default(5_000_000),
  /** Models each provider may be asked for: unset, only its default; `*`, any; a list, those (the first is the default). */
  OPENAI_MODELS: modelList.optional(),
  OPENROUTER_MODELS: modelList.optional(),
  HF_MODELS: modelList.optional(),
  /** Bytes of saved conversations (message text, UTF-8) one account may keep; an append past it is refused. */
  CONVERSATION_MAX_BYTES_PER_USER: integer(0, 1024 * 1024 * 1024 * 1024).default(10 * 1024 * 1024),
  /** Socket.IO events one socket may send per second (signaling, presence); more get RATE_LIMITED acks. */
  SOCKET_EVENTS_PER_SECOND: integer(1, 10_000).default(50),
  /** MiB of events kept, on a node without Redis, for dropped connections to recover; the oldest are dropped first. */
  SOCKET_RECOVERY_BUFFER_MB: integer(1, 4096).default(16),
  /** Open /mesh sockets per session, per user and per client address (IPv6: per /64), on all nodes together (docs/SECURITY.md). */
  SOCKETS_PER_SESSION: integer(1, 10_000).default(8),
  SOCKETS_PER_USER: integer(1, 10_000).default(16),
  SOCKETS_PER_IP: integer(1, 100_000).default(64),
  /** Sockets of one person in one room (tabs); they take one seat of its capacity together. */
  SOCKETS_PER_USER_PER_ROOM: integer(1, 100).default(4),
  /** Engine.IO handshakes (and further namespace connects on one connection) per client address per minute, per node. */
  SOCKET_HANDSHAKES_PER_IP_PER_MINUTE: integer(1, 1_000_000).default(60),
  /** How often a socket's session is checked again: a session deleted or expired unused ends its sockets within this. */
  SOCKET_SESSION_CHECK_SECONDS: integer(1, 86_400).default(300),
  /** Mesh job records (jobs.start, attempt, finish, check together) one user may write per minute; more get TOO_MANY_REQUESTS. */
  JOB_RECORDS_PER_MINUTE: integer(1, 1_000_000).default(120),
  /** STUN/TURN servers handed to browsers and headless peers: public STUN servers by default; `[]` for none. */
  ICE_SERVERS: iceServers.default(DEFAULT_ICE_SERVERS),
  /** /api/health names the running commit only when this is true (deploy details are not for strangers). */
  HEALTH_SHOW_COMMIT: boolean.default(false),
  GIT_COMMIT: z
    .string()
    .trim()
    .regex(/^[0-9a-f]{7,40}$/, 'expected a git commit sha')
    .optional(),
});

export type Env = z.infer<typeof EnvSchema>;

/** Bad configuration: start-up stops with this one-line message. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

export class EnvError extends ConfigError {
  override name = 'EnvError';
}

/** Parses an environment; empty strings count as unset so `.env` files can leave a value blank. */
export function parseEnv(source: Record<string, string | undefined>): Env {
  const cleaned = Object.fromEntries(
    Object.entries(source).filter(([key, value]) => key in EnvSchema.shape && value !== undefined && value !== ''),
  );
  const result = EnvSchema.safeParse(cleaned);
  if (!result.success) {
    const issue = result.error.issues[0];
    const name = String(issue?.path[0] ?? 'environment');
    const given = SECRET_VARIABLES.has(name) ? undefined : cleaned[name];
    throw new EnvError(
      `Invalid environment variable ${name}${given === undefined ? '' : `=${JSON.stringify(given)}`}: ${issue?.message ?? 'invalid'}`,
    );
  }
  const env = result.data;
  if (env.SESSION_MAX_DAYS < env.SESSION_IDLE_DAYS) {
    throw new EnvError('Invalid environment variable SESSION_MAX_DAYS: must be at least SESSION_IDLE_DAYS');
  }
  // A /v1 request waiting for a peer sends nothing: the connection's idle timeout would end it first.
  if (env.MESH_API_WAIT_MS >= env.CONNECTION_TIMEOUT_MS) {
    throw new EnvError('Invalid environment variable MESH_API_WAIT_MS: must be less than CONNECTION_TIMEOUT_MS');
  }
  return env;
}

export function loadEnv(): Env {
  return parseEnv(process.env);
}

export function resolveDataDir(env: Pick<Env, 'DATA_DIR'>): string {
  return path.resolve(env.DATA_DIR);
}

export function resolveModelCacheDir(env: Pick<Env, 'DATA_DIR' | 'MODEL_CACHE_DIR'>): string {
  return path.resolve(env.MODEL_CACHE_DIR ?? path.join(env.DATA_DIR, 'models'));
}
