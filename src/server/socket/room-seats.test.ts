import { describe, expect, it } from 'vitest';
import { seatRefusal } from './room-seats.ts';

const limits = { capacity: 2, perUser: 3 };

describe('seatRefusal', () => {
  it('seats a newcomer while fewer people than the capacity are present', () => {
    expect(seatRefusal([], 'a', limits)).toBeNull();
    expect(seatRefusal(['b', 'b', 'b'], 'a', limits)).toBeNull();
  });

  it('refuses a newcomer once as many people as the capacity are present, however many sockets they hold', () => {
    expect(seatRefusal(['b', 'c'], 'a', limits)).toBe('ROOM_FULL');
    expect(seatRefusal(['b', 'c', 'c'], 'a', limits)).toBe('ROOM_FULL');
  });

  it("lets a person's further socket share their seat in a full room, up to the per-person cap", () => {
    expect(seatRefusal(['a', 'b'], 'a', limits)).toBeNull();
    expect(seatRefusal(['a', 'a', 'b'], 'a', limits)).toBeNull();
    expect(seatRefusal(['a', 'a', 'a', 'b'], 'a', limits)).toBe('TOO_MANY_SOCKETS');
    expect(seatRefusal(['a', 'a', 'a'], 'a', { capacity: 8, perUser: 3 })).toBe('TOO_MANY_SOCKETS');
  });
});
