// The send side of a data channel, however the WebRTC stack spells it (the browser's RTCDataChannel, werift in
// Node): what a link (rtc/) gives the mesh protocol (mesh/), so neither needs the other.
export interface Wire {
  send(text: string): void;
  isOpen(): boolean;
  bufferedAmount(): number;
  /** Calls `listener` once when the buffered amount falls to `threshold` (or the wire closes). */
  onceBelow(threshold: number, listener: () => void): void;
}
