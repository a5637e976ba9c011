// The peer protocol over one data channel, for browsers (RTCDataChannel) and Node (werift) alike: messages go out
// in order, large ones as chunks, and wait while the channel's buffer is full; messages coming in are put back
// together, size-capped and schema-checked, and anything else is dropped and counted, never thrown.
import {
  ChunkFrameSchema,
  type OutgoingPeerMessage,
  PEER_LIMITS,
  PEER_PROTOCOL_VERSION,
  type PeerMessage,
  PeerMessageSchema,
  checkedTokenMessage,
} from '../peer-protocol.ts';

import type { Wire } from '../wire.ts';

export type { Wire } from '../wire.ts';

/** Room in a frame for its own fields around the data. */
const FRAME_OVERHEAD = 128;

/**
 * Cuts `text` into pieces whose JSON string form (quotes, backslashes and control characters escaped: up to six
 * characters for one) fits a frame with its fields.
 */
function splitForFrames(text: string): string[] {
  const budget = PEER_LIMITS.frameChars - FRAME_OVERHEAD;
  const pieces: string[] = [];
  for (let start = 0; start < text.length;) {
    let end = Math.min(text.length, start + budget);
    while (JSON.stringify(text.slice(start, end)).length > budget)
      end = start + Math.max(1, Math.floor((end - start) * 0.75));
    pieces.push(text.slice(start, end));
    start = end;
  }
  return pieces;
}

export type DropReason = 'oversize' | 'malformed' | 'invalid' | 'chunk';

export class PeerChannel {
  private outgoing: Promise<void> = Promise.resolve();
  private pending = 0;
  /** Messages not sent because the peer did not read what was already queued for it. */
  droppedOutgoing = 0;
  private nextChunkId = 0;
  private readonly partial = new Map<
    number,
    { parts: (string | undefined)[]; received: number; chars: number; since: number }
  >();
  /** Messages dropped on arrival, by reason (for tests, and a peer that keeps sending junk can be left). */
  readonly dropped: Record<DropReason, number> = { oversize: 0, malformed: 0, invalid: 0, chunk: 0 };
  onMessage: (message: PeerMessage) => void = () => {};
  onDrop: (reason: DropReason, detail: string) => void = () => {};

  constructor(private readonly wire: Wire) {}

  /** Sends `message`, after every earlier one; resolves once it is handed to the channel (false: channel closed). */
  send(message: OutgoingPeerMessage): Promise<boolean> {
    const text = JSON.stringify({ v: PEER_PROTOCOL_VERSION, ...message });
    // A peer that stops reading fills the channel's buffer and then this queue: past the cap, messages to it are
    // dropped (its jobs then fail on the missing tokens), instead of memory growing without end.
    if (this.pending >= PEER_LIMITS.pendingMessages) {
      this.droppedOutgoing++;
      return Promise.resolve(false);
    }
    this.pending++;
    const next = this.outgoing.then(() => this.write(text)).finally(() => this.pending--);
    this.outgoing = next.then(
      () => undefined,
      () => undefined,
    );
    return next;
  }

  private async write(text: string): Promise<boolean> {
    if (text.length > PEER_LIMITS.messageChars)
      throw new Error(`A peer message is at most ${PEER_LIMITS.messageChars} characters (this one: ${text.length})`);
    const frames: string[] = [];
    if (text.length <= PEER_LIMITS.frameChars) frames.push(text);
    else {
      const id = this.nextChunkId++;
      const pieces = splitForFrames(text);
      pieces.forEach((data, index) =>
        frames.push(JSON.stringify({ v: PEER_PROTOCOL_VERSION, type: 'chunk', id, index, count: pieces.length, data })),
      );
    }
    for (const frame of frames) {
      if (!this.wire.isOpen()) return false;
      if (this.wire.bufferedAmount() > PEER_LIMITS.bufferedHighBytes) {
        await new Promise<void>((resolve) => this.wire.onceBelow(PEER_LIMITS.bufferedHighBytes / 2, resolve));
        if (!this.wire.isOpen()) return false;
      }
      this.wire.send(frame);
    }
    return true;
  }

  /** A frame from the data channel. */
  receive(raw: unknown): void {
    if (typeof raw !== 'string') return this.drop('malformed', 'binary frames are not part of the protocol');
    if (raw.length > PEER_LIMITS.frameChars) return this.drop('oversize', `a frame of ${raw.length} characters`);
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch {
      return this.drop('malformed', 'not JSON');
    }
    if ((value as { type?: unknown } | null)?.type === 'chunk') return this.receiveChunk(value);
    this.deliver(value);
  }

  private receiveChunk(value: unknown): void {
    const parsed = ChunkFrameSchema.safeParse(value);
    if (!parsed.success) return this.drop('chunk', parsed.error.issues[0]?.message ?? 'bad chunk');
    const { id, index, count, data } = parsed.data;
    const now = Date.now();
    for (const [key, entry] of this.partial)
      if (now - entry.since > PEER_LIMITS.partialTimeoutMs) this.partial.delete(key);
    let entry = this.partial.get(id);
    if (!entry) {
      if (this.partial.size >= PEER_LIMITS.partialMessages) {
        const oldest = this.partial.keys().next().value;
        if (oldest !== undefined) this.partial.delete(oldest);
        this.drop('chunk', 'too many messages in pieces at once');
      }
      entry = { parts: new Array<string | undefined>(count), received: 0, chars: 0, since: now };
      this.partial.set(id, entry);
    }
    if (index >= entry.parts.length || entry.parts.length !== count || entry.parts[index] !== undefined) {
      this.partial.delete(id);
      return this.drop('chunk', `chunk ${index} of ${count} does not fit message ${id}`);
    }
    entry.parts[index] = data;
    entry.received++;
    entry.chars += data.length;
    if (entry.chars > PEER_LIMITS.messageChars) {
      this.partial.delete(id);
      return this.drop('oversize', `message ${id} grew past ${PEER_LIMITS.messageChars} characters`);
    }
    if (entry.received < count) return;
    this.partial.delete(id);
    const text = entry.parts.join('');
    if (text.length > PEER_LIMITS.messageChars) return this.drop('oversize', `a message of ${text.length} characters`);
    try {
      this.deliver(JSON.parse(text));
    } catch {
      this.drop('malformed', 'chunks that are not JSON together');
    }
  }

  private deliver(value: unknown): void {
    // The hot message first, as strictly checked (peer-protocol.ts); every other one through the schema.
    const token = checkedTokenMessage(value);
    if (token) return this.onMessage(token);
    const parsed = PeerMessageSchema.safeParse(value);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      return this.drop('invalid', issue ? `${issue.path.join('.') || 'message'}: ${issue.message}` : 'invalid message');
    }
    this.onMessage(parsed.data);
  }

  private drop(reason: DropReason, detail: string): void {
    this.dropped[reason]++;
    this.onDrop(reason, detail);
  }

  /** Messages dropped so far, all reasons together. */
  droppedTotal(): number {
    return Object.values(this.dropped).reduce((a, b) => a + b, 0);
  }
}
