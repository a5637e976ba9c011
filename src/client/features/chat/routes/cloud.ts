// The cloud route: a provider answers through the server's chat.stream (tRPC over SSE), with the conversation's
// settings and model. A guest identity is made first when there is none: chat.stream needs a session.
import type { EngineMessage } from '../../../../shared/engine-protocol.ts';
import type { ChatProviderId, ChatSampling } from '../../../../shared/schemas/chat.ts';
import { trpc } from '../../../lib/trpc.ts';
import { ensureSession } from '../../../lib/session.ts';
import { formatReadout } from '../readout.ts';
import { type Answer, type AnswerResult, streamedAnswer } from './answer.ts';

export interface CloudTarget {
  provider: ChatProviderId;
  label: string;
  /** Empty: the provider's default model. */
  model: string;
}

export function cloudAnswer(target: CloudTarget, prompt: EngineMessage[], sampling: ChatSampling): Answer {
  const { provider, label } = target;
  return streamedAnswer((emit) => {
    let text = '';
    let finish: ((result: AnswerResult) => void) | null = null;
    let unsubscribe: (() => void) | null = null;
    let stopped = false;
    const stoppedResult = (): AnswerResult => ({
      text,
      record: { route: 'CLOUD', provider },
      readout: formatReadout({ route: 'cloud-stopped', label }),
    });
    const result = (async () => {
      await ensureSession();
      if (stopped) return stoppedResult();
      return new Promise<AnswerResult>((resolve, reject) => {
        finish = resolve;
        const subscription = trpc.chat.stream.subscribe(
          { provider, ...(target.model ? { model: target.model } : {}), messages: prompt, sampling },
          {
            onData(event) {
              if (event.type === 'delta') {
                text += event.text;
                emit(event.text);
                return;
              }
              subscription.unsubscribe();
              const { ttftMs, tokensPerSecond } = event.timings;
              resolve({
                text,
                record: {
                  route: 'CLOUD',
                  provider,
                  modelId: event.model,
                  ...(ttftMs === null ? {} : { ttftMs }),
                  ...(tokensPerSecond === null ? {} : { tokensPerSecond }),
                  ...(event.usage ? { tokensOut: event.usage.completionTokens } : {}),
                },
                readout: formatReadout({ route: 'cloud', label, model: event.model, ttftMs, tokensPerSecond }),
              });
            },
            onError: (cause) => reject(cause),
          },
        );
        unsubscribe = () => subscription.unsubscribe();
      });
    })();
    return {
      result,
      stop() {
        stopped = true;
        unsubscribe?.();
        // Kept like a stopped answer from the device or the mesh: what came so far.
        (finish as ((result: AnswerResult) => void) | null)?.(stoppedResult());
      },
    };
  });
}
