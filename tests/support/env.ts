import { type Env, parseEnv } from '../../src/server/env.ts';

/** Embedded defaults, quiet logs, test mode; overrides as raw env strings, exactly as a shell would give them. */
export function testEnv(overrides: Record<string, string> = {}): Env {
  return parseEnv({ NODE_ENV: 'test', LOG_LEVEL: 'silent', ...overrides });
}
