import { describe, expect, it } from 'vitest';
import { FetchError, checkTarget, isPublicAddress } from './safe-fetch.ts';

describe('isPublicAddress', () => {
  it('refuses loopback, private, link-local, metadata, CGNAT and mapped forms of them', () => {
    for (const address of [
      '127.0.0.1',
      '10.1.2.3',
      '172.16.0.1',
      '192.168.1.1',
      '169.254.169.254',
      '100.64.0.1',
      '0.0.0.0',
      '::1',
      'fe80::1',
      'fc00::1',
      '::ffff:127.0.0.1',
      '::ffff:10.0.0.1',
      'not-an-ip',
    ]) {
      expect(isPublicAddress(address), address).toBe(false);
    }
  });

  it('accepts public unicast addresses', () => {
    for (const address of ['93.184.216.34', '1.1.1.1', '2606:4700:4700::1111', '::ffff:8.8.8.8']) {
      expect(isPublicAddress(address), address).toBe(true);
    }
  });
});

describe('checkTarget', () => {
  const hub = 'http://127.0.0.1:4000';
  it('allows the configured hub origin over http and on loopback', () => {
    expect(checkTarget(new URL(`${hub}/x`), hub)).toEqual({ allowPrivate: true });
  });

  it('refuses other http, credentials and literal non-public addresses before connecting', () => {
    expect(() => checkTarget(new URL('http://127.0.0.1:4001/x'), hub)).toThrowError(FetchError);
    expect(() => checkTarget(new URL('http://example.org/x'), hub)).toThrowError(/non-https/);
    expect(() => checkTarget(new URL('https://user:pw@example.org/x'), hub)).toThrowError(/credentials/);
    expect(() => checkTarget(new URL('https://10.0.0.1/x'), hub)).toThrowError(/non-public/);
    expect(() => checkTarget(new URL('https://[::1]/x'), hub)).toThrowError(/non-public/);
    expect(checkTarget(new URL('https://cdn-lfs.example.org/x'), hub)).toEqual({ allowPrivate: false });
  });
});
