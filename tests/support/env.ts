import { type Env, parseEnv } from '../../src/server/env.ts';

/**
 * Limits meant for a public server would trip over tests that sign in hundreds of times from 127.0.0.1, and
 * the purge timer would race tests that move the clock: both are off unless a test sets them.
 */
const TEST_DEFAULTS: Record<string, string> = {
  GUEST_CREATIONS_PER_IP_PER_HOUR: '100000',
  AUTH_ATTEMPTS_PER_IP_PER_MINUTE: '100000',
  ROOM_CREATIONS_PER_USER_PER_HOUR: '100000',
  DOWNLOADS_PER_USER_PER_HOUR: '100000',
  MODEL_ADDS_PER_USER_PER_HOUR: '100000',
  CHATS_PER_USER_PER_MINUTE: '100000',
  // Refusals are answered at once, so tests of a limit need not wait; tests/abuse-http.test.ts covers the delay.
  RATE_LIMIT_DELAY_MS: '0',
  // Budgets are not smoothed over their window unless a test asks (tests/abuse-http.test.ts covers smoothing).
  RATE_LIMIT_BURST_SECONDS: '3600',
  HOUSEKEEPING_INTERVAL_MS: '0',
  // Tests run offline: no public STUN servers (the default) to ask; tests of the default set it themselves.
  ICE_SERVERS: '[]',
};

/** Embedded defaults, quiet logs, test mode; overrides as raw env strings, exactly as a shell would give them. */
export function testEnv(overrides: Record<string, string> = {}): Env {
  return parseEnv({ NODE_ENV: 'test', LOG_LEVEL: 'silent', ...TEST_DEFAULTS, ...overrides });
}
