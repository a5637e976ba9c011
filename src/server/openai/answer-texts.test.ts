import { describe, expect, it } from 'vitest';
import { AnswerTexts, recordsGate } from './answer-texts.ts';

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('AnswerTexts', () => {
  it('gives the first text at once and joins later texts that came in the same turn', async () => {
    const texts = new AnswerTexts();
    const read = texts.read(() => {});
    texts.push('a');
    texts.push('b');
    expect(await read.next()).toEqual({ value: 'ab', done: false });
    texts.push('c');
    texts.push('d');
    const next = read.next();
    texts.push('e');
    expect(await next).toEqual({ value: 'cde', done: false });
    texts.end();
    texts.settle();
    expect(await read.next()).toEqual({ value: undefined, done: true });
  });

  it('calls drained only once the job ended and every text was given, and returns once settled', async () => {
    const texts = new AnswerTexts();
    let drained = 0;
    const read = texts.read(() => drained++);
    texts.push('a');
    texts.end();
    expect(await read.next()).toEqual({ value: 'a', done: false });
    expect(drained).toBe(0);
    const last = read.next();
    await turn();
    expect(drained).toBe(1);
    expect(texts.settled).toBe(false);
    texts.settle();
    expect(await last).toEqual({ value: undefined, done: true });
    expect(texts.settled).toBe(true);
  });
});

describe('recordsGate', () => {
  it('opens a turn of the event loop after open is called', async () => {
    const gate = recordsGate();
    let opened = false;
    void gate.ready.then(() => (opened = true));
    gate.open();
    await Promise.resolve();
    expect(opened).toBe(false);
    await turn();
    await Promise.resolve();
    expect(opened).toBe(true);
  });
});
