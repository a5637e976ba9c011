import { describe, expect, it } from 'vitest';
import { EnvError, parseEnv } from '../env.ts';

describe('ICE_SERVERS', () => {
  it('defaults to public STUN servers of two operators, which ICE_SERVERS=[] empties', () => {
    const servers = parseEnv({}).ICE_SERVERS;
    const urls = servers.flatMap((server) => server.urls);
    expect(urls).toContain('stun:stun.l.google.com:19302');
    expect(urls).toContain('stun:stun.cloudflare.com:3478');
    // STUN only: a default TURN server would relay everyone's traffic through a third party.
    expect(urls.every((url) => url.startsWith('stun:'))).toBe(true);
    expect(servers.every((server) => server.username === undefined && server.credential === undefined)).toBe(true);
    expect(parseEnv({ ICE_SERVERS: '[]' }).ICE_SERVERS).toEqual([]);
  });

  it('takes a JSON list of STUN/TURN servers', () => {
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
