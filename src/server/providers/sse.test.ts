import { describe, expect, it } from 'vitest';
import { retryAfterSeconds } from './openai-compatible.ts';
import { ProviderError, sanitizeUpstreamMessage } from './provider.ts';
import { SseParser } from './sse.ts';

const STREAM =
  ': OPENROUTER PROCESSING\r\n\r\n' +
  'data: {"a":1}\r\n\r\n' +
  'event: message\nid: 7\ndata:{"b":"é✓"}\n\n' +
  'data: line one\ndata: line two\n\n' +
  'data: [DONE]\r\r';

describe('SseParser', () => {
  it('returns the data of each event, skipping comments and other fields, with LF, CRLF and CR line ends', () => {
    const parser = new SseParser();
    expect([...parser.push(STREAM), ...parser.end()]).toEqual([
      '{"a":1}',
      '{"b":"é✓"}',
      'line one\nline two',
      '[DONE]',
    ]);
  });

  it('gives the same events whatever the stream is split into, even between CR and LF', () => {
    for (const size of [1, 2, 3, 5, 7]) {
      const parser = new SseParser();
      const events: string[] = [];
      for (let i = 0; i < STREAM.length; i += size) events.push(...parser.push(STREAM.slice(i, i + size)));
      events.push(...parser.end());
      expect(events, `slices of ${size}`).toEqual(['{"a":1}', '{"b":"é✓"}', 'line one\nline two', '[DONE]']);
    }
  });

  it('holds an unfinished event until its blank line arrives', () => {
    const parser = new SseParser();
    expect(parser.push('data: {"partial":')).toEqual([]);
    expect(parser.push('true}\n')).toEqual([]);
    expect(parser.push('\n')).toEqual(['{"partial":true}']);
  });

  it('refuses an event over 1 MiB instead of buffering without end', () => {
    const parser = new SseParser();
    expect(() => parser.push(`data: ${'x'.repeat(1024 * 1024 + 1)}`)).toThrowError(ProviderError);
  });
});

describe('retryAfterSeconds', () => {
  it('reads delta-seconds and HTTP dates, and ignores what it cannot read', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(retryAfterSeconds('7', now)).toBe(7);
    expect(retryAfterSeconds('Thu, 01 Jan 2026 00:00:30 GMT', now)).toBe(30);
    expect(retryAfterSeconds('Wed, 31 Dec 2025 00:00:00 GMT', now)).toBe(0);
    expect(retryAfterSeconds('soon', now)).toBeNull();
    expect(retryAfterSeconds(null, now)).toBeNull();
    expect(retryAfterSeconds('99999999', now)).toBe(86_400);
  });
});

describe('sanitizeUpstreamMessage', () => {
  it('removes the configured key and key-shaped strings, control characters, and cuts long text', () => {
    const key = 'my-custom-secret-value';
    const text = sanitizeUpstreamMessage(
      `bad key ${key}\n\u0000 also sk-abcdef123456 and hf_abcdefghij and Bearer xyz`,
      [key],
    );
    expect(text).toBe('bad key [redacted] also [redacted] and [redacted] and [redacted]');
    expect(sanitizeUpstreamMessage('y'.repeat(500), [])).toHaveLength(200);
  });
});
