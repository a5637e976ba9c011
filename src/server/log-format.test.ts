import { describe, expect, it } from 'vitest';
import { logFormat } from './log-format.ts';

describe('logFormat', () => {
  it('writes readable lines to a terminal and JSON to anything else when left on auto', () => {
    expect(logFormat('auto', true)).toBe('pretty');
    expect(logFormat('auto', false)).toBe('json');
  });

  it('does what LOG_FORMAT names whatever stdout is', () => {
    expect(logFormat('json', true)).toBe('json');
    expect(logFormat('pretty', false)).toBe('pretty');
  });
});
