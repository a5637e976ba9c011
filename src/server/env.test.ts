import { describe, expect, it } from 'vitest';
import { EnvError, parseEnv } from './env.ts';

describe('parseEnv', () => {
  it('gives an embedded default for everything', () => {
    const env = parseEnv({});
    expect(env).toMatchObject({ PORT: 8787, HOST: '127.0.0.1', DATA_DIR: './data', LOG_LEVEL: 'info' });
    expect(env.DATABASE_URL).toBeUndefined();
    expect(env.PUBLIC_ORIGIN).toBeUndefined();
  });

  it('names the variable and the value in one line when a value is bad', () => {
    expect(() => parseEnv({ PORT: 'abc' })).toThrowError(EnvError);
    expect(() => parseEnv({ PORT: 'abc' })).toThrowError(/^Invalid environment variable PORT="abc": expected an integer/);
    expect(() => parseEnv({ PORT: '70000' })).toThrowError(/PORT="70000": expected at most 65535/);
    expect(() => parseEnv({ LOG_LEVEL: 'loud' })).toThrowError(/LOG_LEVEL="loud"/);
    expect(() => parseEnv({ DATABASE_URL: 'mysql://x' })).toThrowError(/DATABASE_URL="mysql:\/\/x": expected a postgres/);
    expect(() => parseEnv({ PUBLIC_ORIGIN: 'not a url' })).toThrowError(/PUBLIC_ORIGIN/);
    expect(() => parseEnv({ TRUST_PROXY: 'maybe' })).toThrowError(/TRUST_PROXY="maybe": expected true or false/);
  });

  it('treats empty values as unset and ignores unrelated variables', () => {
    const env = parseEnv({ PORT: '', DATABASE_URL: '', HOME: '/root' });
    expect(env.PORT).toBe(8787);
    expect(env.DATABASE_URL).toBeUndefined();
    expect(env).not.toHaveProperty('HOME');
  });

  it('normalises PUBLIC_ORIGIN to an origin', () => {
    expect(parseEnv({ PUBLIC_ORIGIN: 'https://mesh.example.org/app/' }).PUBLIC_ORIGIN).toBe('https://mesh.example.org');
  });

  it('refuses an absolute session cap shorter than the idle expiry', () => {
    expect(() => parseEnv({ SESSION_IDLE_DAYS: '30', SESSION_MAX_DAYS: '7' })).toThrowError(/SESSION_MAX_DAYS/);
  });
});
