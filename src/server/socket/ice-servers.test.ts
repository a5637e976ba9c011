import { describe, expect, it } from 'vitest';
import { EnvError, parseEnv } from '../env.ts';

describe('ICE_SERVERS', () => {
  it('is empty by default and takes a JSON list of STUN/TURN servers', () => {
    expect(parseEnv({}).ICE_SERVERS).toEqual([]);
    const servers = [
      { urls: 'stun:stun.example.org:3478' },
      { urls: ['turn:turn.example.org'], username: 'u', credential: 'secret-pass' },
    ];
    expect(parseEnv({ ICE_SERVERS: JSON.stringify(servers) }).ICE_SERVERS).toEqual(servers);
  });

  it('refuses bad JSON or other URL schemes without echoing the value (TURN credentials)', () => {
    for (const bad of [
      'not json',
      '[{"urls":"http://x"}]',
      '[{"urls":"turn:x","credential":"secret-pass","extra":1}]',
    ]) {
      const error = (() => {
        try {
          parseEnv({ ICE_SERVERS: bad });
        } catch (e) {
          return e;
        }
        return null;
      })();
      expect(error).toBeInstanceOf(EnvError);
      expect((error as Error).message).toMatch(/ICE_SERVERS/);
      expect((error as Error).message).not.toContain('secret-pass');
    }
  });
});
