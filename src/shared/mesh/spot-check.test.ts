import { describe, expect, it } from 'vitest';
import type { GeneratedToken } from './engine-gate.ts';
import { type CheckPeer, spotCheck } from './spot-check.ts';

const tokensOf = (text: string): GeneratedToken[] =>
  [...text].map((char, index) => ({ index, tokenId: char.charCodeAt(0), text: char }));
const peer = (name: string) => ({ peerId: `peer-${name}`, userId: `user-${name}` });
const ada = peer('ada');
const bea = peer('bea');

/** A check of `served` (made by ada, then bea from `switchAt`) with checkers answering as given (null: refuses). */
function check(served: string, answers: Record<string, string | null>, switchAt = served.length) {
  const tokens = tokensOf(served);
  const madeBy = tokens.map((_, i) => (i < switchAt ? ada : bea));
  const checkers = Object.keys(answers).map(peer);
  const asked: string[] = [];
  return {
    asked,
    verdict: spotCheck({
      jobId: 'job-1',
      tokens,
      madeBy,
      candidates: (skip) => checkers.filter((c) => !skip.has(c.userId)),
      rerun: async (c) => {
        asked.push(c.peerId);
        const answer = answers[c.peerId.slice('peer-'.length)];
        return answer === null || answer === undefined ? null : tokensOf(answer);
      },
    }),
  };
}

describe('spotCheck', () => {
  it('is a MATCH when the first checker agrees, and the servers earn trust', async () => {
    const { verdict, asked } = check('abc', { cy: 'abc', dee: 'abc' });
    expect(await verdict).toMatchObject({
      check: { result: 'MATCH', checkers: ['peer-cy'], excluded: [] },
      matchedUsers: ['user-ada'],
      exclusions: [],
      mismatch: null,
    });
    expect(asked).toEqual(['peer-cy']);
  });

  it('is UNRESOLVED when nobody could check: silence proves nothing and earns no trust', async () => {
    const { verdict } = check('abc', { cy: null });
    expect(await verdict).toMatchObject({
      check: { result: 'UNRESOLVED', checkers: [] },
      matchedUsers: [],
      mismatch: null,
    });
  });

  it('excludes the serving peer that made the first differing token when two checkers agree, and corrects the answer', async () => {
    const { verdict } = check('abXY', { cy: 'abcd', dee: 'abcd' }, 2);
    const result = await verdict;
    expect(result.check).toEqual({
      result: 'MISMATCH',
      checkers: ['peer-cy', 'peer-dee'],
      excluded: ['peer-bea'],
      corrected: { tokenIds: [97, 98, 99, 100], text: 'abcd' },
    });
    expect(result.exclusions).toEqual([{ peer: bea, why: "its tokens for job job-1 did not match two other peers'" }]);
    expect(result.mismatch).toBe(bea);
  });

  it('excludes the first checker instead when the second agrees with the served answer', async () => {
    const { verdict } = check('abc', { cy: 'xyz', dee: 'abc' });
    const result = await verdict;
    expect(result.check).toMatchObject({ result: 'MATCH', excluded: ['peer-cy'] });
    expect(result.matchedUsers).toEqual(['user-ada']);
    expect(result.mismatch?.peerId).toBe('peer-cy');
  });

  it('reports, but excludes nobody, when the opinions split or there is no third one', async () => {
    const split = await check('abc', { cy: 'xyz', dee: 'qrs' }).verdict;
    expect(split).toMatchObject({ check: { result: 'UNRESOLVED', excluded: [] }, exclusions: [], mismatch: ada });
    const alone = await check('abc', { cy: 'xyz' }).verdict;
    expect(alone).toMatchObject({
      check: { result: 'UNRESOLVED', checkers: ['peer-cy'] },
      exclusions: [],
      mismatch: ada,
    });
  });

  it('judges a chain of stage peers as one: checked by peers of other users, its peers excluded together', async () => {
    // A pipeline answer made by ada's and bea's stages (docs/pipeline.md); a chain of cy and dee, and eve alone, check it.
    const served = { ...ada, members: [ada, bea] };
    const chainCheck = { ...peer('cy'), members: [peer('cy'), peer('dee')] };
    const eve = peer('eve');
    const offered: string[][] = [];
    const tokens = tokensOf('abXY');
    const verdict = await spotCheck({
      jobId: 'job-2',
      tokens,
      madeBy: tokens.map(() => served),
      candidates: (skip) => {
        offered.push([...skip].sort());
        const all: CheckPeer[] = [chainCheck, eve, peer('bea')];
        return all.filter((c) => !(c.members ?? [c]).some((m) => skip.has(m.userId)));
      },
      rerun: async () => tokensOf('abcd'),
    });
    // Every user of the served chain is skipped, then every user of the chain that gave the first opinion.
    expect(offered).toEqual([
      ['user-ada', 'user-bea'],
      ['user-ada', 'user-bea', 'user-cy', 'user-dee'],
    ]);
    expect(verdict.check).toEqual({
      result: 'MISMATCH',
      checkers: ['peer-cy', 'peer-dee', 'peer-eve'],
      excluded: ['peer-ada', 'peer-bea'],
      corrected: { tokenIds: [97, 98, 99, 100], text: 'abcd' },
    });
    expect(verdict.exclusions.map((e) => e.peer)).toEqual([served]);
    const held = await spotCheck({
      jobId: 'job-3',
      tokens,
      madeBy: tokens.map(() => served),
      candidates: () => [chainCheck],
      rerun: async () => tokens,
    });
    expect(held.check).toMatchObject({ result: 'MATCH', checkers: ['peer-cy', 'peer-dee'] });
    expect(held.matchedUsers).toEqual(['user-ada', 'user-bea']);
  });

  it('blames the last serving peer for an answer that stopped early', async () => {
    const result = await check('ab', { cy: 'abc', dee: 'abc' }, 1).verdict;
    expect(result.check.excluded).toEqual(['peer-bea']);
  });
});
