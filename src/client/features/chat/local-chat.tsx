// Chat with a catalogue model on this device (load with phases, stream an answer, stop it) or with a cloud
// provider through the server (chat.stream over SSE). The first slice of the chat screen; the PWA issue grows it
// (model picker, history, offline state).
import { useEffect, useRef, useState } from 'react';
import type { EngineMessage, EngineModel, LoadedInfo } from '../../../shared/engine-protocol.ts';
import type { ChatProviderInfo } from '../../../shared/schemas/chat.ts';
import type { ManifestEntry } from '../../../shared/schemas/models.ts';
import { trpc } from '../../lib/trpc.ts';
import type { Generation, LoadProgressEvent } from '../../workers/engine-client.ts';
import { inferenceEngine } from '../../workers/inference.ts';

type CatalogueEntry = ManifestEntry & { serverStatus: string };

const BACKEND_LABEL = { webgpu: 'WebGPU', wasm: 'WASM', cpu: 'CPU' } as const;

function engineModel(entry: CatalogueEntry): EngineModel {
  const { id, repo, revision, dtype, contextLength } = entry;
  return { id, repo, revision, dtype, contextLength, files: entry.files.map((f) => f.path) };
}

export function LocalChat() {
  const [model, setModel] = useState<CatalogueEntry | null>(null);
  const [progress, setProgress] = useState<LoadProgressEvent | null>(null);
  const [loaded, setLoaded] = useState<LoadedInfo | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [messages, setMessages] = useState<(EngineMessage & { readout?: string })[]>([]);
  const [input, setInput] = useState('');
  const generation = useRef<Generation | null>(null);
  const cloud = useRef<{ unsubscribe(): void } | null>(null);
  const [providers, setProviders] = useState<ChatProviderInfo[]>([]);
  const [route, setRoute] = useState<string>('device');
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    fetch('/api/trpc/manifest.list')
      .then(async (response) => {
        const body = (await response.json()) as { result: { data: CatalogueEntry[] } };
        setModel(body.result.data.find((entry) => entry.bundled) ?? null);
      })
      .catch((cause: unknown) => setError(`Could not read the catalogue: ${String(cause)}`));
    trpc.chat.providers
      .query()
      .then((list) => setProviders(list.filter((p) => p.configured)))
      .catch(() => setProviders([]));
  }, []);

  async function load() {
    if (!model) return;
    setError(null);
    try {
      setLoaded(await inferenceEngine().load(engineModel(model), { onProgress: setProgress }));
    } catch (cause) {
      setError(cause instanceof Error ? cause.message : String(cause));
    }
  }

  async function send() {
    const text = input.trim();
    if (!text || busy) return;
    const history: EngineMessage[] = [...messages.map(({ role, content }) => ({ role, content })), { role: 'user', content: text }];
    setInput('');
    setMessages([...history, { role: 'assistant', content: '' }]);
    setBusy(true);
    if (route !== 'device') return sendToProvider(route, history);
    const run = inferenceEngine().generate(history, { temperature: 0.8, topP: 0.95, maxNewTokens: 128 });
    generation.current = run;
    let answer = '';
    try {
      for await (const token of run) {
        answer += token.text;
        setMessages([...history, { role: 'assistant', content: answer }]);
      }
      const outcome = await run.result;
      const readout = `device · ${loaded ? BACKEND_LABEL[loaded.backend] : ''} · TTFT ${Math.round(outcome.ttftMs)} ms · ${outcome.tokensPerSecond.toFixed(1)} tok/s`;
      setMessages([...history, { role: 'assistant', content: outcome.text, readout }]);
    } catch (cause) {
      setError(cause instanceof Error ? cause.message : String(cause));
    } finally {
      generation.current = null;
      setBusy(false);
    }
  }

  async function sendToProvider(provider: string, history: EngineMessage[]) {
    const label = providers.find((p) => p.id === provider)?.label ?? provider;
    const finish = (message?: string) => {
      cloud.current = null;
      setBusy(false);
      if (message) setError(message);
    };
    try {
      // Cloud chat needs a session: a guest identity is made on first use.
      if (!(await trpc.auth.me.query())) await trpc.auth.guest.mutate({});
    } catch (cause) {
      return finish(cause instanceof Error ? cause.message : String(cause));
    }
    let answer = '';
    cloud.current = trpc.chat.stream.subscribe(
      { provider: provider as ChatProviderInfo['id'], messages: history, sampling: { maxTokens: 256 } },
      {
        onData(event) {
          if (event.type === 'delta') {
            answer += event.text;
            setMessages([...history, { role: 'assistant', content: answer }]);
            return;
          }
          const { ttftMs, tokensPerSecond } = event.timings;
          const readout = `${label} · TTFT ${ttftMs ?? '?'} ms · ${tokensPerSecond === null ? '?' : tokensPerSecond.toFixed(1)} tok/s`;
          setMessages([...history, { role: 'assistant', content: answer, readout }]);
          cloud.current?.unsubscribe();
          finish();
        },
        onError: (cause) => finish(cause.message),
      },
    );
  }

  function stop() {
    generation.current?.stop();
    if (cloud.current) {
      cloud.current.unsubscribe();
      cloud.current = null;
      setBusy(false);
    }
  }

  return (
    <section className="chat" aria-label="Local chat">
      {model ? (
        <div data-testid="model-card">
          <strong>{model.name}</strong> {model.demo ? '(demo model)' : ''}
          <button type="button" data-testid="model-load" onClick={() => void load()} disabled={Boolean(loaded) || (progress !== null && progress.phase !== 'Ready')}>
            Load
          </button>
          <span data-testid="model-status" role="status">
            {loaded ? `Ready: ${loaded.reason}` : progress ? `${progress.phase}: ${progress.message}` : 'Not loaded'}
          </span>
          {loaded && <span data-testid="backend-badge">{BACKEND_LABEL[loaded.backend]}</span>}
        </div>
      ) : (
        <p>Reading the catalogue…</p>
      )}
      {error && <p role="alert">{error}</p>}
      <ol className="messages">
        {messages.map((message, i) => (
          <li key={i} data-testid={`chat-message-${message.role}`}>
            {message.content}
            {message.readout && <small data-testid="answer-readout"> {message.readout}</small>}
          </li>
        ))}
      </ol>
      <form
        onSubmit={(event) => {
          event.preventDefault();
          void send();
        }}
      >
        <label>
          Answer with
          <select data-testid="chat-route" value={route} onChange={(event) => setRoute(event.target.value)}>
            <option value="device">this device</option>
            {providers.map((p) => (
              <option key={p.id} value={p.id}>
                {p.label}
              </option>
            ))}
          </select>
        </label>
        <label>
          Message
          <input data-testid="chat-input" value={input} onChange={(event) => setInput(event.target.value)} disabled={route === 'device' && !loaded} />
        </label>
        <button type="submit" data-testid="chat-send" disabled={(route === 'device' && !loaded) || busy}>
          Send
        </button>
        <button type="button" data-testid="chat-stop" disabled={!busy} onClick={stop}>
          Stop
        </button>
      </form>
    </section>
  );
}
