// The server as a member of its own rooms, for the OpenAI-compatible API: a requester-only headless peer per room
// (src/peer/headless-peer.ts: the same MeshNode, JobRequester and werift data channels as any Node peer) that joins
// through the server's own signaling over loopback, and the peers the server itself serves with (SERVE_MODELS).
// A /v1 job then runs through the one requester there is (askMesh): streaming, failover with an identical
// continuation, cancel, deadlines, spot checks and the job record, as from a browser.
//
// Each member's jobs wait their turn for a place at the room's peers (slot-queue.ts): every serving peer takes a
// couple of jobs at once from one requesting peer, so a burst of streams from one key queues here, in order, up to
// MESH_API_WAIT_MS, instead of being refused while the peers are busy. MESH_API_STREAMS_PER_USER caps an account's
// streams (running or waiting) through this server.
//
// Each (room, account) has its own member, signed in as the key's account (a session made for it here): the signaling
// layer lets only an account that belongs to a room join it, serving peers cap each requesting peer on its own, and
// the job records and spot-check trust are the account's, as from its own browser.
import path from 'node:path';
import type { FastifyBaseLogger } from 'fastify';
import type { HeadlessPeer } from '../../peer/headless-peer.ts';
import type { PrismaClient } from '../db/client.ts';
import { GLOBAL_ROOM } from '../services/room.ts';
import { type SessionPolicy, createSession } from '../services/session.ts';
import { DEFAULT_JOB_SERVER_OPTIONS } from '../../shared/mesh/job-server.ts';
import { MAX_JOBS_PER_REQUESTER } from '../../shared/pipeline/stage-server.ts';
import type { ModelRef } from '../../shared/peer-protocol.ts';
import { OpenAIError } from './errors.ts';
import { SlotQueue } from './slot-queue.ts';

declare module 'fastify' {
  interface FastifyInstance {
    /** The server's members of its rooms for /v1 (what the tests watch: streams open per account). */
    meshGateway: MeshGateway;
  }
}

/**
 * The headless peer, loaded on first use: it brings werift, socket.io-client and transformers.js (with ONNX
 * Runtime), about a second of start-up and 60 MiB that a server nobody asks over /v1 does not need (bench/README.md,
 * "A lean server").
 */
const loadHeadlessPeer = async () => (await import('../../peer/headless-peer.ts')).HeadlessPeer;

/** Requester members kept at once (each holds a socket and a data channel per room member); the oldest idle goes. */
export const MESH_API_MEMBERS = 32;
/** How long a room's requester member waits for its first data channels after joining. */
const SETTLE_MS = 5_000;
/**
 * How long a job waits for a peer sharing its model while room members are still connecting (on a busy two-core
 * machine a WebRTC link can take several seconds); a room whose members are all connected answers at once.
 */
export const CONNECTING_WAIT_MS = 15_000;

export interface MeshGatewayOptions {
  /** The server's own origin once it listens (null before: the mesh is out of reach). */
  origin: () => string | null;
  db: PrismaClient;
  sessionPolicy: SessionPolicy;
  cacheDir: string;
  log: FastifyBaseLogger;
  /** Streams one account may have open (running or waiting): MESH_API_STREAMS_PER_USER. */
  streamsPerUser: number;
  /** How long a job waits for a place at the room's peers: MESH_API_WAIT_MS. */
  waitMs: number;
}

interface Member {
  peer: HeadlessPeer;
  ready: Promise<HeadlessPeer>;
  usedAt: number;
  running: number;
  /** Jobs waiting for or holding a place at the peers, per model file (and per pipeline model). */
  queues: Map<string, SlotQueue>;
  unsubscribe: () => void;
}

export class MeshGateway {
  private readonly members = new Map<string, Member>();
  private readonly serving: HeadlessPeer[] = [];
  /** Open streams per account. */
  private readonly streams = new Map<string, number>();
  private closed = false;

  constructor(private readonly options: MeshGatewayOptions) {}

  get waitMs(): number {
    return this.options.waitMs;
  }

  /** Streams `userId` has open through this server (running or waiting). */
  openStreams(userId: string): number {
    return this.streams.get(userId) ?? 0;
  }

  /** Counts one more stream for `userId`, or refuses it (429) at MESH_API_STREAMS_PER_USER; returns the release. */
  admit(userId: string): () => void {
    const open = this.streams.get(userId) ?? 0;
    if (open >= this.options.streamsPerUser) {
      throw OpenAIError.rateLimited(
        `At most ${this.options.streamsPerUser} mesh streams at once per account (running or waiting for a peer): wait for one to end`,
        1,
      );
    }
    this.streams.set(userId, open + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.streams.get(userId) ?? 1) - 1;
      if (left > 0) this.streams.set(userId, left);
      else this.streams.delete(userId);
    };
  }

  /**
   * Where `peer`'s jobs on `model` wait their turn: as many run at once as the room's peers that share it take from
   * one requester (each peer's own cap, DEFAULT_JOB_SERVER_OPTIONS), the rest wait in order.
   */
  queue(peer: HeadlessPeer, model: ModelRef): SlotQueue {
    const node = peer.node;
    const capacity = () => (node?.requester.rank(model).length ?? 0) * DEFAULT_JOB_SERVER_OPTIONS.perPeerOutstanding;
    return this.queueOf(peer, model.sha256, capacity);
  }

  /**
   * Where `peer`'s pipeline jobs on `model` (docs/pipeline.md) wait their turn: as many run at once as each stage
   * peer opens from one requester (MAX_JOBS_PER_REQUESTER: a chain runs every job on each of its peers), while the
   * room has a chain covering every layer; the rest wait in order.
   */
  pipelineQueue(peer: HeadlessPeer, model: string): SlotQueue {
    const node = peer.node;
    const capacity = () => (node?.pipelines.chain(model) ? MAX_JOBS_PER_REQUESTER : 0);
    return this.queueOf(peer, `pipeline\u0000${model}`, capacity);
  }

  private queueOf(peer: HeadlessPeer, key: string, capacity: () => number): SlotQueue {
    const member = [...this.members.values()].find((candidate) => candidate.peer === peer);
    if (!member) return new SlotQueue(capacity);
    let queue = member.queues.get(key);
    if (!queue) {
      queue = new SlotQueue(capacity);
      member.queues.set(key, queue);
    }
    return queue;
  }

  /** The requester member of `room` asking for `userId` (started on first use, and again if it failed). */
  async member(room: string, userId: string): Promise<HeadlessPeer> {
    const origin = this.options.origin();
    if (!origin || this.closed) throw new Error('This server is not listening, so it cannot reach its rooms');
    const key = memberKey(room, userId);
    let member = this.members.get(key);
    if (!member) {
      this.evict();
      const HeadlessPeer = await loadHeadlessPeer();
      const token =
        room === GLOBAL_ROOM
          ? undefined
          : (await createSession(this.options.db, userId, this.options.sessionPolicy)).token;
      const peer = new HeadlessPeer({
        server: origin,
        room,
        name: 'API (this server)',
        token,
        cacheDir: this.options.cacheDir,
        log: (line) => this.options.log.debug({ room }, line),
        onEnded: () => this.drop(key),
      });
      const ready = peer.start().then(
        async () => {
          await settle(peer);
          // A peer that comes, or says its queue moved, may have room for the jobs waiting here.
          const unsubscribe = peer.node?.subscribe(() => {
            for (const queue of entry.queues.values()) queue.pump();
          });
          if (unsubscribe) entry.unsubscribe = unsubscribe;
          return peer;
        },
        async (error: unknown) => {
          this.drop(key);
          throw error;
        },
      );
      const entry: Member = { peer, ready, usedAt: Date.now(), running: 0, queues: new Map(), unsubscribe: () => {} };
      member = entry;
      this.members.set(key, member);
    }
    member.usedAt = Date.now();
    return member.ready;
  }

  /** Counts a job running through a member, so eviction leaves it alone; returns the release. */
  hold(peer: HeadlessPeer): () => void {
    const member = [...this.members.values()].find((candidate) => candidate.peer === peer);
    if (!member) return () => {};
    member.running++;
    return () => {
      member.running--;
      member.usedAt = Date.now();
    };
  }

  /**
   * SERVE_MODELS: load each model here and share it into the global room, as `npm run peer` would; `prepare` runs
   * before each model's peer starts (the server fetching the files that peer loads: serve-models.ts).
   */
  async serve(models: readonly string[], prepare: (model: string) => Promise<void> = async () => {}): Promise<void> {
    const origin = this.options.origin();
    if (!origin) throw new Error('SERVE_MODELS needs the server to listen first');
    const HeadlessPeer = await loadHeadlessPeer();
    for (const model of models) {
      await prepare(model);
      if (this.closed) return;
      const peer = new HeadlessPeer({
        server: origin,
        room: GLOBAL_ROOM,
        model,
        name: `${model} (this server)`,
        cacheDir: this.options.cacheDir,
        log: (line) => this.options.log.info({ model }, line),
      });
      this.serving.push(peer);
      await peer.start();
    }
  }

  /** Models this server loaded itself (SERVE_MODELS), once they are shared. */
  ownModels(): string[] {
    return this.serving.flatMap((peer) => peer.node?.capabilities().models.map((model) => model.id) ?? []);
  }

  private drop(key: string): void {
    const member = this.members.get(key);
    if (!member) return;
    this.members.delete(key);
    member.unsubscribe();
    for (const queue of member.queues.values()) queue.close(OpenAIError.unavailable('The server left this room', 5));
    void member.peer.stop().catch(() => undefined);
  }

  private evict(): void {
    if (this.members.size < MESH_API_MEMBERS) return;
    const idle = [...this.members.entries()]
      .filter(([, member]) => member.running === 0)
      .sort(([, a], [, b]) => a.usedAt - b.usedAt)[0];
    if (idle) this.drop(idle[0]);
  }

  async close(): Promise<void> {
    this.closed = true;
    const peers = [...[...this.members.values()].map((member) => member.peer), ...this.serving];
    for (const member of this.members.values()) {
      member.unsubscribe();
      for (const queue of member.queues.values())
        queue.close(OpenAIError.unavailable('The server is shutting down', 5));
    }
    this.members.clear();
    this.serving.length = 0;
    await Promise.all(peers.map((peer) => peer.stop().catch(() => undefined)));
  }
}

/**
 * Waits until the member has a data channel and a hello from every member of the room that signaling told it of
 * (one who just joined may still be connecting), or `enough` holds (say, a peer sharing the model said hello), or
 * `timeoutMs` passes. A room whose members are all connected answers at once.
 */
export async function settle(peer: HeadlessPeer, enough = () => false, timeoutMs = SETTLE_MS): Promise<void> {
  const node = peer.node;
  if (!node) return;
  const settled = () =>
    enough() || node.list().filter((member) => member.capabilities !== null).length >= peer.roomSize();
  if (settled()) return;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(done, timeoutMs);
    const unsubscribe = node.subscribe(() => {
      if (settled()) done();
    });
    function done() {
      clearTimeout(timer);
      unsubscribe();
      resolve();
    }
  });
}

const memberKey = (room: string, userId: string) => `${room}\u0000${userId}`;

export function gatewayCacheDir(dataDir: string): string {
  return path.join(dataDir, 'serve-cache');
}
