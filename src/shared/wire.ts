// The send side of a data channel, however the WebRTC stack spells it (the browser's RTCDataChannel, werift in
// Node): what a link (rtc/) gives the mesh protocol (mesh/), so neither needs the other.
export interface Wire {
  send(text: string): void;
  isOpen(): boolean;
  bufferedAmount(): number;
  /** Calls `listener` once when the buffered amount falls to `threshold` (or the wire closes). */
  onceBelow(threshold: number, listener: () => void): void;
}

/** What `onceBufferedBelow` needs of a data channel. */
export interface BufferedChannel {
  readonly readyState: string;
  readonly bufferedAmount: number;
  bufferedAmountLowThreshold: number;
  addEventListener(type: 'bufferedamountlow' | 'close', listener: () => void): void;
  removeEventListener(type: 'bufferedamountlow' | 'close', listener: () => void): void;
}

/** `Wire.onceBelow` over a data channel: at once when it is not open or already drained, else on its low event. */
export function onceBufferedBelow(channel: BufferedChannel, threshold: number, listener: () => void): void {
  if (channel.readyState !== 'open' || channel.bufferedAmount <= threshold) return listener();
  channel.bufferedAmountLowThreshold = threshold;
  const once = () => {
    channel.removeEventListener('bufferedamountlow', once);
    channel.removeEventListener('close', once);
    listener();
  };
  channel.addEventListener('bufferedamountlow', once);
  channel.addEventListener('close', once);
}
