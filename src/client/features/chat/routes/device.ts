// The device route: the model loaded in this browser's worker answers. This device's own chat goes first: a job it
// serves for a peer is handed to another peer (engineGate).
import type { EngineMessage } from '../../../../shared/engine-protocol.ts';
import type { Generation } from '../../../../shared/engine-client.ts';
import type { JobSampling } from '../../../../shared/peer-protocol.ts';
import { inferenceEngine } from '../../../workers/inference.ts';
import { engineGate, meshNode } from '../../mesh/mesh-store.ts';
import type { ActiveModel } from '../../models/model-store.ts';
import { formatReadout } from '../readout.ts';
import { type Answer, streamedAnswer } from './answer.ts';

export function deviceAnswer(loaded: ActiveModel, prompt: EngineMessage[], sampling: JobSampling): Answer {
  return streamedAnswer((emit) => {
    let generation: Generation | null = null;
    let stopped = false;
    const result = (async () => {
      const release = await engineGate.acquire('local');
      let outcome;
      try {
        generation = inferenceEngine().generate(prompt, sampling);
        if (stopped) generation.stop();
        for await (const token of generation) emit(token.text);
        outcome = await generation.result;
      } finally {
        release();
      }
      meshNode.measured(outcome.tokensPerSecond);
      return {
        text: outcome.text,
        record: {
          route: 'LOCAL' as const,
          modelId: loaded.entry.id,
          backend: loaded.backend,
          ttftMs: outcome.ttftMs,
          tokensPerSecond: outcome.tokensPerSecond,
          tokensOut: outcome.completionTokens,
        },
        readout: formatReadout({
          route: 'device',
          model: loaded.entry.name,
          backend: loaded.backend,
          ttftMs: outcome.ttftMs,
          tokensPerSecond: outcome.tokensPerSecond,
          stopped: outcome.reason === 'interrupted',
        }),
      };
    })();
    return {
      result,
      stop() {
        stopped = true;
        generation?.stop();
      },
    };
  });
}
