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
    expect(() => parseEnv({ PORT: 'abc' })).toThrowError(
      /^Invalid environment variable PORT="abc": expected an integer/,
    );
    expect(() => parseEnv({ PORT: '70000' })).toThrowError(/PORT="70000": expected at most 65535/);
    expect(() => parseEnv({ LOG_LEVEL: 'loud' })).toThrowError(/LOG_LEVEL="loud"/);
    expect(() => parseEnv({ DATABASE_URL: 'mysql://x' })).toThrowError(
      /DATABASE_URL="mysql:\/\/x": expected a postgres/,
    );
    expect(() => parseEnv({ PUBLIC_ORIGIN: 'not a url' })).toThrowError(/PUBLIC_ORIGIN/);
    expect(() => parseEnv({ TRUST_PROXY: 'maybe' })).toThrowError(
      /TRUST_PROXY="maybe": expected false, a hop count, or proxy addresses/,
    );
    expect(() => parseEnv({ REDIS_KEY_PREFIX: 'has space' })).toThrowError(/REDIS_KEY_PREFIX="has space"/);
  });

  it('takes a Redis URL for several nodes, and never echoes it (it may hold a password)', () => {
    expect(parseEnv({})).toMatchObject({ REDIS_KEY_PREFIX: 'mesh' });
    expect(parseEnv({}).REDIS_URL).toBeUndefined();
    expect(parseEnv({ REDIS_URL: 'redis://127.0.0.1:6379', REDIS_KEY_PREFIX: 'site-a' })).toMatchObject({
      REDIS_URL: 'redis://127.0.0.1:6379',
      REDIS_KEY_PREFIX: 'site-a',
    });
    const refused = () => parseEnv({ REDIS_URL: 'http://:hunter2@redis.example:6379' });
    expect(refused).toThrowError(/REDIS_URL.*expected a redis:\/\/ or rediss:\/\/ URL/);
    expect(refused).not.toThrowError(/hunter2/);
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

  it('needs no chat provider configuration: the stub works keyless and the others have their public API roots', () => {
    const env = parseEnv({});
    expect(env).toMatchObject({
      OPENAI_BASE_URL: 'https://api.openai.com/v1',
      OPENROUTER_BASE_URL: 'https://openrouter.ai/api/v1',
      HF_INFERENCE_BASE_URL: 'https://router.huggingface.co/v1',
      CHAT_UPSTREAM_TIMEOUT_MS: 30_000,
      CHAT_MAX_STREAMS_PER_USER: 3,
    });
    expect(env.OPENAI_API_KEY).toBeUndefined();
    expect(env.OPENROUTER_API_KEY).toBeUndefined();
  });

  it('takes provider base URLs without their trailing slash and refuses other schemes', () => {
    expect(parseEnv({ OPENAI_BASE_URL: 'http://127.0.0.1:9999/v1/' }).OPENAI_BASE_URL).toBe('http://127.0.0.1:9999/v1');
    expect(() => parseEnv({ OPENROUTER_BASE_URL: 'ftp://example.org/v1' })).toThrowError(
      /OPENROUTER_BASE_URL="ftp:\/\/example.org\/v1": expected an http/,
    );
    expect(() => parseEnv({ CHAT_MAX_STREAMS_PER_USER: '0' })).toThrowError(
      /CHAT_MAX_STREAMS_PER_USER="0": expected at least 1/,
    );
  });

  it('refuses a key with spaces or control characters without echoing the key', () => {
    expect(parseEnv({ OPENAI_API_KEY: ' sk-good ' }).OPENAI_API_KEY).toBe('sk-good');
    const bad = 'sk-secret\nX-Injected: 1';
    expect(() => parseEnv({ OPENAI_API_KEY: bad })).toThrowError(
      /^Invalid environment variable OPENAI_API_KEY: expected a key of printable/,
    );
    expect(() => parseEnv({ HF_TOKEN: 'hf_secret with space' })).toThrowError(
      /^Invalid environment variable HF_TOKEN: /,
    );
    expect(() => parseEnv({ OPENROUTER_API_KEY: 'x'.repeat(513) })).toThrowError(
      /^Invalid environment variable OPENROUTER_API_KEY: expected at most 512 characters$/,
    );
  });

  it('keeps paid providers for accounts, on their default models, within daily budgets unless told otherwise', () => {
    expect(parseEnv({})).toMatchObject({
      CHAT_PROVIDERS_FOR_GUESTS: false,
      CHAT_MAX_STREAMS: 64,
      CHAT_DAILY_TOKENS_PER_USER: 100_000,
      CHAT_DAILY_TOKENS: 5_000_000,
      CONVERSATION_MAX_BYTES_PER_USER: 10 * 1024 * 1024,
    });
    expect(parseEnv({}).OPENAI_MODELS).toBeUndefined();
    expect(
      parseEnv({
        OPENAI_MODELS: '*',
        OPENROUTER_MODELS: ' openai/gpt-4o , anthropic/claude-3.5-haiku,',
        HF_MODELS: 'meta-llama/Llama-3.2-1B-Instruct:novita',
      }),
    ).toMatchObject({
      OPENAI_MODELS: '*',
      OPENROUTER_MODELS: ['openai/gpt-4o', 'anthropic/claude-3.5-haiku'],
      HF_MODELS: ['meta-llama/Llama-3.2-1B-Instruct:novita'],
    });
    expect(() => parseEnv({ OPENAI_MODELS: 'gpt-4o,*' })).toThrowError(
      /OPENAI_MODELS="gpt-4o,\*": expected \* or comma-separated model names \(not a model name: \*\)/,
    );
    expect(() => parseEnv({ HF_MODELS: 'has space' })).toThrowError(
      /HF_MODELS="has space": expected \* or comma-separated model names/,
    );
  });

  it('refuses an absolute session cap shorter than the idle expiry', () => {
    expect(() => parseEnv({ SESSION_IDLE_DAYS: '30', SESSION_MAX_DAYS: '7' })).toThrowError(/SESSION_MAX_DAYS/);
  });

  it('locks a username after 5 failed sign-ins for 15 minutes unless told otherwise', () => {
    expect(parseEnv({})).toMatchObject({ LOGIN_MAX_FAILURES: 5, LOGIN_LOCKOUT_SECONDS: 900 });
    expect(parseEnv({ LOGIN_MAX_FAILURES: '3', LOGIN_LOCKOUT_SECONDS: '60' })).toMatchObject({
      LOGIN_MAX_FAILURES: 3,
      LOGIN_LOCKOUT_SECONDS: 60,
    });
    expect(() => parseEnv({ LOGIN_MAX_FAILURES: '0' })).toThrowError(/LOGIN_MAX_FAILURES="0": expected at least 1/);
  });
});
