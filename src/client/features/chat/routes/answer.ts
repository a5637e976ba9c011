// What every answer route (device, mesh, cloud) returns: the answer's text as it is made, as an async iterable of
// pieces, its outcome, and a stop.
import type { AnswerRecord } from '../conversations.ts';

export interface AnswerResult {
  text: string;
  readout: string;
  record: AnswerRecord;
  /** A later correction of this answer (a mesh spot check that caught a wrong one), with its readout. */
  corrected?: Promise<{ text: string; readout: string } | null>;
}

export interface Answer extends AsyncIterable<string> {
  /** Settles when the answer is complete or stopped; rejects when the route failed. */
  readonly result: Promise<AnswerResult>;
  /** Ends the answer early: `result` then resolves with what came so far. */
  stop(): void;
}

/**
 * An Answer from a route that reports text through a callback (`emit`): the pieces queue until the iterator takes
 * them, and the iterator ends when the result settles (a failure is read from `result`).
 */
export function streamedAnswer(
  start: (emit: (piece: string) => void) => { result: Promise<AnswerResult>; stop(): void },
): Answer {
  const queue: string[] = [];
  let wake: (() => void) | null = null;
  let settled = false;
  const handle = start((piece) => {
    queue.push(piece);
    wake?.();
  });
  const result = handle.result.finally(() => {
    settled = true;
    wake?.();
  });
  result.catch(() => undefined);
  return {
    result,
    stop: () => handle.stop(),
    async *[Symbol.asyncIterator]() {
      for (;;) {
        const piece = queue.shift();
        if (piece !== undefined) yield piece;
        else if (settled) return;
        else await new Promise<void>((resolve) => (wake = resolve));
      }
    },
  };
}
