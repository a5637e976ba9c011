// The requester against scripted peers (no engine, no network): spot-check verdicts, ranking by measured speed,
// newcomers checked more, and nothing kept about peers that left.
import { describe, expect, it } from 'vitest';
import {
  type JobRejectReason,
  type OutgoingPeerMessage,
  type PeerCapabilities,
  type PeerMessage,
  PEER_PROTOCOL_VERSION,
} from '../peer-protocol.ts';
import {
  DEFAULT_REQUESTER_OPTIONS,
  JobRequester,
  type JobRequesterOptions,
  MeshJobError,
  type PeerView,
} from './job-requester.ts';
import { TRUST_RECORDS } from './peer-trust.ts';

const MODEL = { id: 'nano-shakespeare', sha256: 'a'.repeat(64) };
const MESSAGES = [{ role: 'user' as const, content: 'What says the king?' }];
const SAMPLING = { temperature: 0, topP: 1, maxNewTokens: 8, seed: 1 };
const ANSWER = [11, 12, 13, 14, 15];

interface Script {
  /** What it claims of its speed. */
  claims?: number | null;
  /** Milliseconds between its tokens. */
  tokenDelayMs?: number;
  /** Refuses answers, checks, or both. */
  refuses?: 'answer' | 'check' | 'all';
  /** Why it refuses (QUEUE_FULL unless said). */
  refusal?: JobRejectReason;
  answer?: number[];
  /** Accepts, then finds the conversation too long for the model's context. */
  overflows?: boolean;
}

const pause = (ms: number) => new Promise((resolve) => (ms > 0 ? setTimeout(resolve, ms) : setImmediate(resolve)));

/** The peers that were offered a job and refused it as too long for the context, in order. */
const offers: string[] = [];

/** A peer that answers offers as its script says, straight into `requester`. */
function scripted(requester: () => JobRequester, peerId: string, userId: string, script: Script = {}): PeerView {
  const capabilities: PeerCapabilities = {
    backend: 'cpu',
    adapter: 'cpu',
    models: [MODEL],
    tokensPerSecond: script.claims ?? null,
    queue: 0,
    sharing: true,
  };
  const reply = (message: OutgoingPeerMessage) =>
    requester().receive(peerId, { v: PEER_PROTOCOL_VERSION, ...message } as PeerMessage);
  const serve = async (offer: Extract<OutgoingPeerMessage, { type: 'job:offer' }>) => {
    const { jobId } = offer;
    await pause(0);
    if (script.refuses === 'all' || script.refuses === offer.purpose)
      return reply({ type: 'job:reject', jobId, reason: script.refusal ?? 'QUEUE_FULL', message: 'busy' });
    reply({ type: 'job:accept', jobId, position: 0 });
    if (script.overflows) {
      offers.push(peerId);
      return reply({ type: 'job:error', jobId, code: 'CONTEXT_OVERFLOW', message: 'This message is 600 tokens long' });
    }
    const answer = script.answer ?? ANSWER;
    for (let index = offer.prefix.length; index < answer.length; index++) {
      await pause(script.tokenDelayMs ?? 0);
      reply({ type: 'job:token', jobId, index, tokenId: answer[index] ?? 0, text: `<${answer[index]}>` });
    }
    reply({
      type: 'job:done',
      jobId,
      reason: 'eos',
      backend: 'cpu',
      tokensIn: 4,
      tokensOut: answer.length,
      ttftMs: 1,
      tokensPerSecond: script.claims ?? 1,
    });
  };
  return {
    peerId,
    userId,
    name: peerId,
    capabilities,
    rttMs: 10,
    send: (message) => {
      if (message.type === 'job:offer') void serve(message);
      return Promise.resolve(true);
    },
  };
}

/** A requester over a room whose members the test adds and removes. */
function room(options: Partial<JobRequesterOptions> = {}) {
  const members: PeerView[] = [];
  const requester: JobRequester = new JobRequester(() => members, {
    ...DEFAULT_REQUESTER_OPTIONS,
    spotCheckRate: 0,
    acceptTimeoutMs: 2000,
    stallMs: 2000,
    ...options,
  });
  return {
    requester,
    join(peerId: string, userId: string, script?: Script) {
      const peer = scripted(() => requester, peerId, userId, script);
      members.push(peer);
      return peer;
    },
    leave(peerId: string) {
      members.splice(
        members.findIndex((peer) => peer.peerId === peerId),
        1,
      );
      requester.peerLeft(peerId);
    },
    ask: () => requester.run({ model: MODEL, messages: MESSAGES, sampling: SAMPLING, onToken: () => {} }).result,
  };
}

describe('JobRequester', () => {
  it('reports a spot check that no checker answered as UNRESOLVED, never as a match', async () => {
    const mesh = room({ spotCheckRate: 1 });
    mesh.join('ada', 'user-ada', { claims: 100 });
    const alone = await mesh.ask();
    expect(await alone.check).toMatchObject({ result: 'UNRESOLVED', checkers: [], excluded: [] });
    // A peer that refuses every check is no checker either.
    mesh.join('bob', 'user-bob', { claims: 1, refuses: 'check' });
    const refused = await mesh.ask();
    expect(refused.servedBy.map((p) => p.peerId)).toEqual(['ada']);
    expect(await refused.check).toMatchObject({ result: 'UNRESOLVED', checkers: [] });
    // Nothing was confirmed, so Ada is no closer to trusted.
    expect(mesh.requester.matchesOf('user-ada')).toBe(0);
  });

  it('says MATCH when a checker of another user re-ran the answer and got the same tokens, and MISMATCH when two checkers agree against it', async () => {
    const mesh = room({ spotCheckRate: 1 });
    mesh.join('liar', 'user-liar', { claims: 10_000, answer: [11, 12, 99, 14, 15] });
    mesh.join('ann', 'user-ann', { claims: 1 });
    mesh.join('ben', 'user-ben', { claims: 1 });
    const caught = await mesh.ask();
    expect(await caught.check).toMatchObject({
      result: 'MISMATCH',
      excluded: ['liar'],
      corrected: { tokenIds: ANSWER },
    });
    const honest = await mesh.ask();
    expect(await honest.check).toMatchObject({ result: 'MATCH', excluded: [] });
  });

  it('tells its subscribers when what a room panel shows changes: the check rate, answers served, exclusions', async () => {
    const mesh = room({ spotCheckRate: 1 });
    const seen: { rate: number; served: number; excluded: boolean }[] = [];
    const stop = mesh.requester.subscribe(() =>
      seen.push({
        rate: mesh.requester.spotCheckRate,
        served: mesh.requester.servedCount('liar'),
        excluded: mesh.requester.exclusion('user-liar') !== undefined,
      }),
    );
    mesh.requester.setSpotCheckRate(1);
    mesh.join('liar', 'user-liar', { claims: 10_000, answer: [11, 12, 99, 14, 15] });
    mesh.join('ann', 'user-ann', { claims: 1 });
    mesh.join('ben', 'user-ben', { claims: 1 });
    await (
      await mesh.ask()
    ).check;
    expect(seen).toEqual([
      { rate: 1, served: 0, excluded: false },
      { rate: 1, served: 1, excluded: false },
      { rate: 1, served: 1, excluded: true },
    ]);
    stop();
    mesh.requester.setSpotCheckRate(0);
    expect(seen).toHaveLength(3);
  });

  it('ranks peers by the speed it measured once it has a measurement, not by the speed they claim', async () => {
    const mesh = room();
    // The liar claims 10,000 tokens/s and makes five tokens 40 ms apart; the honest peer claims 100 and is quick.
    mesh.join('liar', 'user-liar', { claims: 10_000, tokenDelayMs: 40 });
    mesh.join('honest', 'user-honest', { claims: 100 });
    expect(mesh.requester.rank(MODEL).map((p) => p.peerId)).toEqual(['liar', 'honest']);
    expect((await mesh.ask()).servedBy.map((p) => p.peerId)).toEqual(['liar']);
    expect(mesh.requester.measuredTokensPerSecond('liar')).toBeLessThan(100);
    expect(mesh.requester.rank(MODEL).map((p) => p.peerId)).toEqual(['honest', 'liar']);
    expect((await mesh.ask()).servedBy.map((p) => p.peerId)).toEqual(['honest']);
  });

  it('takes a busy peer’s refusal as no fault, and fails a job only busy peers refused as BUSY, not NO_PEER', async () => {
    const mesh = room();
    // Barely faster than the other: one failure against it (its score halved) would rank it below.
    const script: Script = { claims: 1.5, refuses: 'all', refusal: 'TOO_MANY_JOBS' };
    mesh.join('quick', 'user-quick', script);
    const busy = await mesh.ask().catch((error: unknown) => error);
    expect(busy).toBeInstanceOf(MeshJobError);
    expect(busy).toMatchObject({ code: 'BUSY', message: expect.stringMatching(/quick: refused \(TOO_MANY_JOBS/) });

    // Another peer comes; the busy one is still ranked first (being busy cost it nothing), and asked first once free.
    mesh.join('slow', 'user-slow', { claims: 1 });
    expect(mesh.requester.rank(MODEL).map((p) => p.peerId)).toEqual(['quick', 'slow']);
    delete script.refuses;
    expect((await mesh.ask()).servedBy.map((p) => p.peerId)).toEqual(['quick']);

    // A peer that cannot run the job at all is no busy peer: with it among the refusals, the job has NO_PEER.
    script.refuses = 'all';
    mesh.join('empty', 'user-empty', { claims: 1, refuses: 'all', refusal: 'MODEL_NOT_LOADED' });
    mesh.leave('slow');
    expect(await mesh.ask().catch((error: unknown) => error)).toMatchObject({ code: 'NO_PEER' });
  });

  it('fails a job too long for the model’s context at the first peer that says so, with no fault against it', async () => {
    const mesh = room();
    mesh.join('first', 'user-first', { claims: 1.5, overflows: true });
    mesh.join('second', 'user-second', { claims: 1, overflows: true });
    offers.length = 0;
    const refused = await mesh.ask().catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(MeshJobError);
    expect(refused).toMatchObject({ code: 'CONTEXT_OVERFLOW', message: 'This message is 600 tokens long' });
    // Every peer of the model fits the conversation the same way: the second is not asked, the first not blamed.
    expect(offers).toEqual(['first']);
    expect(mesh.requester.rank(MODEL).map((p) => p.peerId)).toEqual(['first', 'second']);
  });

  it('checks every answer from a user new here until three checks of its answers held up, and a new identity starts over', async () => {
    // Draws of 0.5 never fall under the chosen 1-in-10 rate: only the newcomer rate can pick a job for a check.
    const mesh = room({ spotCheckRate: 0.1, random: () => 0.5 });
    mesh.join('ada', 'user-ada', { claims: 1000 });
    mesh.join('checker', 'user-checker', { refuses: 'answer' });
    const checked: boolean[] = [];
    for (let i = 0; i < 5; i++) {
      const outcome = await mesh.ask();
      expect(outcome.servedBy.map((p) => p.peerId)).toEqual(['ada']);
      checked.push(outcome.check !== null);
      if (outcome.check) expect((await outcome.check).result).toBe('MATCH');
    }
    expect(checked).toEqual([true, true, true, false, false]);
    // Ada comes back as a fresh guest: a new user, checked again however fast it claims to be.
    mesh.leave('ada');
    mesh.join('ada-again', 'user-ada-2', { claims: 1000 });
    const fresh = await mesh.ask();
    expect(fresh.servedBy.map((p) => p.peerId)).toEqual(['ada-again']);
    expect(fresh.check).not.toBeNull();
  });

  it('keeps nothing about a peer once it leaves, over 10,000 joins and leaves, and a bounded record of users', async () => {
    const mesh = room({ spotCheckRate: 1 });
    // One member stays throughout and checks every answer; each newcomer serves one answer (or refuses) and leaves.
    mesh.join('checker', 'user-checker', { refuses: 'answer' });
    for (let i = 0; i < 10_000; i++) {
      const peerId = `peer-${i}`;
      mesh.join(peerId, `user-${i}`, { claims: 1000, refuses: i % 2 ? 'all' : undefined });
      const outcome = await mesh.ask().catch(() => null);
      if (outcome) await outcome.check;
      mesh.leave(peerId);
    }
    // What remains is about the member still here, and at most TRUST_RECORDS users.
    const footprint = mesh.requester.footprint();
    expect(footprint.peers).toBeLessThanOrEqual(1);
    expect(footprint.users).toBeLessThanOrEqual(TRUST_RECORDS);
    expect(mesh.requester.servedCount('peer-9998')).toBe(0);
  }, 60_000);
});
