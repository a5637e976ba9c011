// The Socket.IO contract of the `/mesh` namespace: presence in rooms and WebRTC signaling between members.
// Every payload is checked with these schemas on arrival; acks are `{ ok: true, data } | { ok: false, error }`.
import { z } from 'zod';
import { PeerCapabilitiesFields } from './peer-protocol.ts';
import { setAsideOtherPipeProtocol } from './pipeline/pipe-protocol.ts';

export const MESH_NAMESPACE = '/mesh';
/** One Socket.IO message at most (maxHttpBufferSize): SDP with many candidates fits with room to spare. */
export const SIGNAL_MAX_BYTES = 64 * 1024;

export const SocketErrorCodeSchema = z.enum([
  'INVALID_PAYLOAD',
  'NOT_FOUND',
  'FORBIDDEN',
  'ROOM_FULL',
  /** This person already has SOCKETS_PER_USER_PER_ROOM sockets in the room. */
  'TOO_MANY_SOCKETS',
  'NOT_IN_ROOM',
  'PEER_NOT_FOUND',
  'RATE_LIMITED',
  'TOO_LARGE',
  /** A service the server needs for this (its database, or Redis between server nodes) is down: try again in `retryInMs`. */
  'UNAVAILABLE',
  'INTERNAL',
]);
export type SocketErrorCode = z.infer<typeof SocketErrorCodeSchema>;
/**
 * `data.code` of a `connect_error` the /mesh namespace gives (`{ message, data: { code } }`; with UNAVAILABLE also
 * `data.retryInMs`: the session could not be checked because the database is down, so connect again then). Refusals before
 * Socket.IO is reached (a Host this server does not serve, too many handshakes from one address) end the transport
 * instead: the client sees a transport error, and the HTTP response carries the message.
 */
export type HandshakeErrorCode = 'UNAUTHORIZED' | 'TOO_MANY_SOCKETS' | 'RATE_LIMITED' | 'UNAVAILABLE';
/** `retryInMs`: with RATE_LIMITED and UNAVAILABLE, when to send the same event again. */
export type Ack<T> = { ok: true; data: T } | { ok: false; error: SocketErrorCode; message: string; retryInMs?: number };

/** What a peer tells the server about itself: what it tells other peers over the data channel (peer-protocol.ts),
 * less the kind of device, which only the peers that choose whom to ask need. */
export const CapabilitiesSchema = z.preprocess(
  setAsideOtherPipeProtocol,
  PeerCapabilitiesFields.omit({ adapter: true }),
);
export type Capabilities = z.infer<typeof CapabilitiesSchema>;
export const NO_CAPABILITIES: Capabilities = {
  backend: null,
  models: [],
  tokensPerSecond: null,
  sharing: false,
  queue: 0,
};

/** A room by its slug (`global`, `my-room`). */
export const RoomSlugSchema = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[a-z0-9][a-z0-9-]*$/, 'Room names in links are lower-case letters, digits and -');
export const PeerIdSchema = z.uuid();

export const RoomJoinSchema = z
  .object({ room: RoomSlugSchema, capabilities: CapabilitiesSchema.default(NO_CAPABILITIES) })
  .strict();
export const RoomLeaveSchema = z.object({ room: RoomSlugSchema }).strict();
export const PeerUpdateSchema = z.object({ room: RoomSlugSchema, capabilities: CapabilitiesSchema }).strict();
/** `data` is SDP or an ICE candidate, opaque to the server: only its size is checked. */
export const SignalRelaySchema = z.object({ room: RoomSlugSchema, to: PeerIdSchema, data: z.unknown() }).strict();

/**
 * What browsers put in `data` (opaque to the server, checked by the receiving peer): a session description, or
 * ICE candidates (several when they queued up behind an unacknowledged relay; null ends the candidates).
 */
const IceCandidateSchema = z.object({
  candidate: z.string().max(1024).optional(),
  sdpMid: z.string().max(64).nullish(),
  sdpMLineIndex: z.number().int().min(0).max(255).nullish(),
  usernameFragment: z.string().max(256).nullish(),
});
export const LinkSignalSchema = z.union([
  z.object({ description: z.object({ type: z.enum(['offer', 'answer']), sdp: z.string().max(SIGNAL_MAX_BYTES) }) }),
  z.object({ candidates: z.array(IceCandidateSchema.nullable()).min(1).max(64) }),
]);
export type LinkSignal = z.infer<typeof LinkSignalSchema>;

export interface PeerInfo {
  peerId: string;
  userId: string;
  displayName: string;
  capabilities: Capabilities;
}

export interface ServerToClientEvents {
  'peer:joined': (event: { room: string; peer: PeerInfo }) => void;
  'peer:left': (event: { room: string; peerId: string }) => void;
  'peer:updated': (event: { room: string; peer: PeerInfo }) => void;
  signal: (event: { room: string; from: string; data: unknown }) => void;
  /**
   * The server took this socket out of `room` without it asking: a recovered connection came back to a room that
   * is now full, or that it may no longer be in. Its links there are stale; joining again may succeed later.
   */
  'room:kicked': (event: { room: string; error: SocketErrorCode; message: string }) => void;
}

export interface ClientToServerEvents {
  'room:join': (
    payload: z.input<typeof RoomJoinSchema>,
    ack: (result: Ack<{ room: string; self: PeerInfo; peers: PeerInfo[] }>) => void,
  ) => void;
  'room:leave': (payload: z.input<typeof RoomLeaveSchema>, ack: (result: Ack<null>) => void) => void;
  'peer:update': (payload: z.input<typeof PeerUpdateSchema>, ack: (result: Ack<null>) => void) => void;
  'signal:relay': (payload: z.input<typeof SignalRelaySchema>, ack: (result: Ack<null>) => void) => void;
}

export type InterServerEvents = Record<string, never>;

export interface SocketData {
  peerId: string;
  userId: string;
  sessionId: string;
  displayName: string;
  kind: 'GUEST' | 'ACCOUNT';
  /** Capabilities per joined room slug. */
  capabilities: Record<string, Capabilities>;
}
