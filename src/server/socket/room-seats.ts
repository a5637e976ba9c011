// Who may take a place in a room. Capacity counts people, not sockets: a person's further tabs share their seat,
// up to a few, so one guest with many sockets neither fills a room nor floods its mesh (docs/SECURITY.md).

export type SeatRefusal = 'ROOM_FULL' | 'TOO_MANY_SOCKETS';

/**
 * Whether one more socket of `userId` may be in a room whose other sockets belong to `present` (a user id per
 * socket); null when it may.
 */
export function seatRefusal(
  present: readonly string[],
  userId: string,
  limits: { capacity: number; perUser: number },
): SeatRefusal | null {
  const mine = present.filter((id) => id === userId).length;
  if (mine >= limits.perUser) return 'TOO_MANY_SOCKETS';
  if (mine > 0) return null;
  return new Set(present).size >= limits.capacity ? 'ROOM_FULL' : null;
}
