// The mesh route for a model nobody in the room shares whole but whose layers peers host as stages
// (docs/pipeline.md): the answer runs as a pipeline job through the room's RoomPipeline, this tab the requester,
// recorded and spot-checked as a whole-model mesh answer is (askPipeline).
// The page holds no stage of the model; the inference worker reads its tokenizer (the chat template for the prompt's
// ids, the answer's text), the stages' peers run the layers, and the last one samples with the job's seed.
import type { EngineMessage } from '../../../../shared/engine-protocol.ts';
import type { JobSampling } from '../../../../shared/peer-protocol.ts';
import { PipelineJobError } from '../../../../shared/pipeline/pipeline-requester.ts';
import { askPipeline } from '../../../../shared/pipeline/pipeline-answer.ts';
import { StageWorkerError, workerTokenizer } from '../../../../shared/pipeline/worker-stage-session.ts';
import { modelFingerprint } from '../../../../shared/schemas/models.ts';
import { trpcJobRecorder } from '../../mesh/job-records.ts';
import { inferenceWorkerPort } from '../../../workers/inference.ts';
import type { MeshRoom } from '../../mesh/mesh-store.ts';
import { type PipelineModel, layersText, stagesText } from '../../mesh/room-pipelines.ts';
import { formatReadout } from '../readout.ts';
import { type Answer, type AnswerResult, streamedAnswer } from './answer.ts';

export type { PipelineModel };

/** Prompt rows per frame: stages work on a long prompt at once (docs/pipeline.md, "The stage runtime"). */
const PROMPT_CHUNK = 64;

export function pipelineAnswer(
  room: MeshRoom,
  model: PipelineModel,
  prompt: EngineMessage[],
  sampling: JobSampling,
): Answer {
  const { entry } = model;
  const tokenizer = workerTokenizer(inferenceWorkerPort(), {
    repo: entry.repo,
    revision: entry.cachedRevision ?? entry.revision,
  });
  return streamedAnswer((emit) => {
    const abort = new AbortController();
    const ids: number[] = [];
    let shown = '';
    // The answer's text as its tokens come, decoded in the worker a few ids at a time (its TextDeltas), so a token
    // costs the same at the end of a long answer as at its start (bench/README.md, "Browser stages (issue 18)").
    const text = tokenizer.textStream((piece) => {
      shown += piece;
      emit(piece);
    });
    /** The whole answer's text, once: what was not streamed yet (a stream that failed) goes out with it. */
    const finish = (whole: string) => {
      if (whole.startsWith(shown) && whole !== shown) emit(whole.slice(shown.length));
      shown = whole;
    };

    const result = (async (): Promise<AnswerResult> => {
      // Fitted to the context as the engine fits a whole-model chat: the oldest turns left out, the answer's room
      // what is left when the last message alone is long (src/shared/chat-template.ts fitPrompt).
      const prompted = await tokenizer
        .tokenize(prompt, { context: entry.contextLength, maxNewTokens: sampling.maxNewTokens })
        .catch((error: unknown) => {
          if (error instanceof StageWorkerError && error.code === 'CONTEXT_OVERFLOW')
            throw new PipelineJobError('CONTEXT_OVERFLOW', error.message.replace('the model', entry.name));
          throw error;
        });
      const started = performance.now();
      let firstAt = 0;
      const revision = entry.cachedRevision ?? entry.revision;
      // Recorded and spot-checked as whole-model mesh answers are (pipeline-answer.ts); the record names the model by
      // the fingerprint of the weights stage peers cut from the server's copy (the dtype Node runs).
      const outcome = await askPipeline(
        room,
        trpcJobRecorder,
        {
          model: { id: entry.id, sha256: await modelFingerprint(entry.repo, revision, entry.dtype.wasm) },
          stages: model.stages.map(({ peerId, layers }) => ({ peerId, layers })),
          job: {
            temperature: sampling.temperature,
            topP: sampling.topP,
            // Always set: a stage taken over by another peer must draw what the first would have drawn.
            seed: sampling.seed ?? crypto.getRandomValues(new Uint32Array(1))[0]!,
          },
          prompt: prompted.ids,
          maxNewTokens: prompted.fitted?.maxNewTokens ?? sampling.maxNewTokens,
          eos: new Set(prompted.eos),
          chunk: PROMPT_CHUNK,
          messages: prompt,
          signal: abort.signal,
        },
        (token) => {
          if (ids.length === 0) firstAt = performance.now();
          ids.push(token);
          text.push(token);
        },
      );
      const stopped = outcome.stopped;
      // Every delta out first; a stream that failed leaves its rest to the whole answer's decode below.
      await text.end().catch(() => undefined);
      const whole = await tokenizer.detokenize(ids);
      finish(whole);
      const done = outcome.readout;
      const seconds = (performance.now() - firstAt) / 1000;
      const ttftMs = done?.ttftMs ?? (firstAt ? firstAt - started : 0);
      const tokensPerSecond = done?.tokensPerSecond ?? (ids.length > 1 && seconds > 0 ? (ids.length - 1) / seconds : 0);
      // A peer that left is named as it was when the job began.
      const names = new Map([
        ...model.stages.map((s) => [s.peerId, s.name] as const),
        ...room.node.list().map((p) => [p.peerId, p.name] as const),
      ]);
      const stages = done ? done.stages.map((s) => ({ ...s, name: names.get(s.peerId) ?? s.name })) : model.stages;
      const readout = formatReadout({
        route: 'pipeline',
        model: entry.name,
        stages: stagesText(stages),
        failovers: (done?.failovers ?? []).map(
          (f) =>
            `${layersText(f.layers)} moved from ${names.get(f.from) ?? 'a peer'} to ${names.get(f.to) ?? 'a peer'}`,
        ),
        ttftMs,
        tokensPerSecond,
        stopped,
      });
      return {
        text: whole,
        record: { route: 'MESH', modelId: entry.id, ttftMs, tokensPerSecond, tokensOut: ids.length },
        readout,
        // A spot check that catches a wrong answer replaces it with the checked one.
        corrected: outcome.check?.then(async (check) => {
          if (!check.corrected) return null;
          const excluded = check.excluded.map((id) => names.get(id) ?? 'a peer').join(', ');
          return {
            text: await tokenizer.detokenize(check.corrected.tokenIds),
            readout: `${readout} · corrected by a spot check; ${excluded} excluded from this room's jobs`,
          };
        }),
      };
    })();
    // A failed answer's text is forgotten in the worker too.
    result.catch(() => text.end().catch(() => undefined));
    return { result, stop: () => abort.abort() };
  });
}
