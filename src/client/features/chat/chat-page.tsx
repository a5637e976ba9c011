// The Chat screen: answers from the model loaded on this device or from a cloud provider through the server,
// streamed with a stop button, regenerate, markdown, a readout of where each answer ran, a live tokens/s line,
// and the conversations kept on this device.
import { Suspense, lazy, useCallback, useEffect, useRef, useState, useSyncExternalStore } from 'react';
import { Link } from 'wouter';
import { BACKEND_LABEL } from '../../../shared/engine-protocol.ts';
import type { ChatProviderId } from '../../../shared/schemas/chat.ts';
import { useOnline } from '../../lib/pwa.ts';
import { api, trpc } from '../../lib/trpc.ts';
import { inferenceEngine } from '../../workers/inference.ts';
import { type MeshOutcome, MeshJobError } from '../../../shared/mesh/job-requester.ts';
import type { ModelRef } from '../../../shared/peer-protocol.ts';
import { askMesh } from '../../../shared/mesh/mesh-answer.ts';
import { trpcJobRecorder } from '../mesh/job-records.ts';
import { type MeshRoom, engineGate, meshNode, useMeshRoom } from '../mesh/mesh-store.ts';
import { useLoadedModel } from '../models/model-store.ts';
import { chatErrorText } from './chat-errors.ts';
import {
  type AnswerRecord,
  type ConversationSummary,
  deviceStore,
  knownAccount,
  serverStore,
  syncOfflineConversations,
} from './conversation-store.ts';
import { type ChatItem, type Conversation, titleOf } from './conversations.ts';
import { NoModelOffer } from './no-model.tsx';
import { Sparkline } from './sparkline.tsx';

// A chunk of its own (it is large), fetched as the Chat screen opens rather than with the first answer: a page
// that outlives its network (offline after a hard reload, which skips the service worker) still renders answers,
// and as plain text when even that failed.
const loadMarkdown = () =>
  import('./markdown.tsx').catch(() => ({ default: ({ text }: { text: string }) => <p>{text}</p> }));
const MarkdownText = lazy(loadMarkdown);
const noSubscribe = () => () => {};
const noSnapshot = () => null;

interface Run {
  stop(): void;
}

/** Models that peers in the room share now, best-offered first (by how many peers share each). */
function sharedModels(room: MeshRoom | null): { ref: ModelRef; peers: number }[] {
  if (!room) return [];
  const counts = new Map<string, { ref: ModelRef; peers: number }>();
  for (const peer of room.node.list()) {
    if (!peer.capabilities?.sharing || room.node.requester.isExcluded(peer)) continue;
    for (const ref of peer.capabilities.models) {
      const entry = counts.get(ref.sha256) ?? { ref, peers: 0 };
      entry.peers++;
      counts.set(ref.sha256, entry);
    }
  }
  return [...counts.values()].sort((a, b) => b.peers - a.peers);
}

function meshReadout(outcome: MeshOutcome): string {
  const last = outcome.servedBy.at(-1);
  const backend =
    outcome.backend in BACKEND_LABEL ? BACKEND_LABEL[outcome.backend as keyof typeof BACKEND_LABEL] : outcome.backend;
  const parts = [`on ${last?.name ?? 'a peer'}`, backend, `${outcome.tokensPerSecond.toFixed(1)} tok/s`];
  if (last?.rttMs !== null && last?.rttMs !== undefined) parts.push(`${Math.round(last.rttMs)} ms RTT`);
  parts.push(`TTFT ${Math.round(outcome.ttftMs)} ms`);
  if (outcome.failovers)
    parts.push(
      `continued after ${outcome.failovers} peer${outcome.failovers === 1 ? '' : 's'} left (${outcome.servedBy.map((p) => p.name).join(' → ')})`,
    );
  if (outcome.reason === 'interrupted') parts.push('stopped');
  return parts.join(' · ');
}

export function ChatPage() {
  const loaded = useLoadedModel();
  const meshRoom = useMeshRoom();
  // Re-render as peers come, go and change what they share.
  useSyncExternalStore(meshRoom?.subscribe ?? noSubscribe, meshRoom?.getSnapshot ?? noSnapshot);
  const shared = sharedModels(meshRoom);
  const [temperature, setTemperature] = useState(0.7);
  // Empty: a new seed per answer. A fixed seed makes an answer reproducible, on this device or any peer.
  const [seed, setSeed] = useState('');
  const online = useOnline();
  const providers = api.chat.providers.useQuery(undefined, { enabled: online, retry: false });
  const me = api.auth.me.useQuery(undefined, { enabled: online, retry: false });
  // Accounts keep their conversations on the server; guests (and anyone offline) on this device.
  const store = me.data?.kind === 'ACCOUNT' && online ? serverStore : deviceStore;
  const accountId = me.data?.kind === 'ACCOUNT' ? me.data.id : null;
  const [route, setRoute] = useState<string>('device');
  const [conversation, setConversation] = useState<Conversation>(() => ({
    id: crypto.randomUUID(),
    title: 'New chat',
    updatedAt: Date.now(),
    messages: [],
  }));
  const [history, setHistory] = useState<ConversationSummary[]>([]);
  const [input, setInput] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [rates, setRates] = useState<number[]>([]);
  const run = useRef<Run | null>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => void loadMarkdown(), []);
  const refreshHistory = useCallback(() => void store.list().then(setHistory, () => setHistory([])), [store]);
  useEffect(refreshHistory, [refreshHistory]);
  // Back online and signed in: conversations kept here while offline go to the account.
  const [syncing, setSyncing] = useState(false);
  useEffect(() => {
    if (!accountId || !online) return;
    let cancelled = false;
    // Starting the sync is this effect's job; the flag shows it is under way.
    // eslint-disable-next-line react-hooks/set-state-in-effect
    setSyncing(true);
    syncOfflineConversations(accountId)
      .then(
        (synced) => {
          if (cancelled) return;
          setConversation((c) =>
            synced.has(c.id) ? { ...c, serverId: synced.get(c.id) ?? null, syncFor: undefined } : c,
          );
          refreshHistory();
        },
        (cause: unknown) =>
          !cancelled &&
          setError(
            `Conversations kept on this device while offline could not be saved to your account yet: ${chatErrorText(cause)}`,
          ),
      )
      .finally(() => !cancelled && setSyncing(false));
    return () => {
      cancelled = true;
    };
  }, [accountId, online, refreshHistory]);

  const configured = (providers.data ?? []).filter((p) => p.configured);
  // Providers that cost money are for accounts unless the server opens them to guests (docs/SECURITY.md).
  const account = me.data?.kind === 'ACCOUNT';
  const usable = (provider: { openToGuests: boolean }) => account || provider.openToGuests;
  /** The cloud provider Auto falls back on. */
  const autoCloud = online ? configured.find(usable) : undefined;

  /** Keeps the conversation after an answer (`record`), or after a failed one on the device only. */
  async function persist(messages: ChatItem[], record?: AnswerRecord) {
    const next = withMessages(conversation, messages);
    // Signed in but offline: kept here for the account, which gets it when the network returns.
    const waitingFor = store.onServer ? null : (accountId ?? knownAccount());
    if (waitingFor && next.syncFor?.accountId !== waitingFor) {
      // A conversation the account holds already: it holds everything up to the last answer before this turn.
      const before = record ? messages.slice(0, -1) : messages;
      next.syncFor = {
        accountId: waitingFor,
        synced: next.serverId ? before.findLastIndex((m) => m.role === 'assistant') + 1 : 0,
      };
    }
    setConversation(next);
    if (!record && store.onServer) return;
    try {
      const id = await store.saveTurn(next, record ?? { route: 'LOCAL' });
      if (store.onServer) setConversation((c) => ({ ...c, serverId: id }));
    } catch (cause) {
      setError(`The answer is here but could not be saved: ${cause instanceof Error ? cause.message : String(cause)}`);
    }
    refreshHistory();
  }

  /** `draft`: the text typed for this answer, put back in the box when a cloud provider could not be reached. */
  async function answer(messages: ChatItem[], options: { draft?: string } = {}) {
    let cloudTarget = false;
    let received = false;
    setError(null);
    setBusy(true);
    setRates([]);
    const show = (content: string, readout?: string) =>
      setConversation((c) => ({
        ...c,
        messages: [...messages, { role: 'assistant', content, ...(readout ? { readout } : {}) }],
      }));
    show('');
    const stamps: number[] = [];
    const sample = setInterval(() => {
      const now = performance.now();
      setRates((r) => [...r.slice(-59), stamps.filter((t) => t > now - 1000).length]);
    }, 250);
    try {
      const prompt = messages.map(({ role, content }) => ({ role, content }));
      type Result = { text: string; readout: string; record: AnswerRecord };
      const fromMesh = async (): Promise<Result> => {
        const room = meshRoom;
        const model = shared[0]?.ref;
        if (!room) throw new Error('Join a room on the Rooms screen to ask its peers');
        if (!model)
          throw new Error(`Nobody in room ${room.room} shares a model now: load one here, or pick another route`);
        const job = askMesh(
          room,
          trpcJobRecorder,
          model,
          prompt,
          { temperature, topP: 0.95, maxNewTokens: 256, seed: seedFrom(seed) },
          (text) => {
            stamps.push(performance.now());
            show(text);
          },
        );
        run.current = job;
        const outcome = await job.result;
        if (!outcome)
          return { text: '', record: { route: 'MESH', modelId: model.id }, readout: 'stopped before a peer answered' };
        // A spot check that catches a wrong answer replaces it with the checked one.
        void outcome.check?.then((check) => {
          if (!check.corrected) return;
          const excluded = check.excluded
            .map((id) => outcome.servedBy.find((p) => p.peerId === id)?.name ?? 'a peer')
            .join(', ');
          const note = `corrected by a spot check; ${excluded} excluded from this room's jobs`;
          setConversation((c) => {
            const fixed = [...c.messages];
            const at = fixed.findLastIndex((m) => m.role === 'assistant' && m.content === outcome.text);
            if (at >= 0)
              fixed[at] = {
                role: 'assistant',
                content: check.corrected?.text ?? '',
                readout: `${meshReadout(outcome)} · ${note}`,
              };
            return { ...c, messages: fixed };
          });
        });
        return {
          text: outcome.text,
          record: {
            route: 'MESH',
            modelId: model.id,
            tokensPerSecond: outcome.tokensPerSecond,
            ttftMs: outcome.ttftMs,
            tokensOut: outcome.tokenIds.length,
          },
          readout: meshReadout(outcome),
        };
      };
      const fromDevice = async (): Promise<Result> => {
        if (!loaded) throw new Error('Load a model on the Models screen first, or pick a cloud provider');
        // This device's own chat comes first: a job it serves for a peer is handed to another peer.
        const release = await engineGate.acquire('local');
        let outcome;
        try {
          const generation = inferenceEngine().generate(prompt, {
            temperature,
            topP: 0.95,
            maxNewTokens: 256,
            seed: seedFrom(seed),
          });
          run.current = generation;
          let text = '';
          for await (const token of generation) {
            stamps.push(performance.now());
            text += token.text;
            show(text);
          }
          outcome = await generation.result;
        } finally {
          release();
        }
        meshNode.measured(outcome.tokensPerSecond);
        return {
          text: outcome.text,
          record: {
            route: 'LOCAL',
            modelId: loaded.entry.id,
            backend: loaded.backend,
            ttftMs: outcome.ttftMs,
            tokensPerSecond: outcome.tokensPerSecond,
            tokensOut: outcome.completionTokens,
          },
          readout: `${loaded.entry.name} on this device · ${BACKEND_LABEL[loaded.backend]} · TTFT ${Math.round(outcome.ttftMs)} ms · ${outcome.tokensPerSecond.toFixed(1)} tok/s${outcome.reason === 'interrupted' ? ' · stopped' : ''}`,
        };
      };
      const fromCloud = async (provider: string): Promise<Result> => {
        if (!(await trpc.auth.me.query())) await trpc.auth.guest.mutate({});
        const label = configured.find((p) => p.id === provider)?.label ?? provider;
        return new Promise<Result>((resolve, reject) => {
          let text = '';
          const subscription = trpc.chat.stream.subscribe(
            {
              provider: provider as ChatProviderId,
              messages: prompt,
              sampling: { maxTokens: 512 },
            },
            {
              onData(event) {
                received = true;
                if (event.type === 'delta') {
                  stamps.push(performance.now());
                  text += event.text;
                  show(text);
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
                  readout: `${label} · ${event.model} · TTFT ${ttftMs ?? '?'} ms · ${tokensPerSecond === null ? '?' : tokensPerSecond.toFixed(1)} tok/s`,
                });
              },
              onError: (cause) => reject(cause),
            },
          );
          run.current = {
            stop() {
              subscription.unsubscribe();
              // Kept like a stopped answer from the device or the mesh: what came so far.
              resolve({ text, record: { route: 'CLOUD', provider }, readout: `${label} · stopped` });
            },
          };
        });
      };
      let result: Result;
      const target = resolveRoute();
      if (target === 'mesh') {
        try {
          result = await fromMesh();
        } catch (cause) {
          // Auto: when the mesh cannot answer (nobody left who shares the model), a cloud provider can.
          if (route !== 'auto' || !(cause instanceof MeshJobError) || cause.code === 'CANCELLED' || !autoCloud)
            throw cause;
          show('');
          result = await fromCloud(autoCloud.id);
          result.readout += ` · the mesh could not answer: ${cause.message}`;
        }
      } else if (target === 'device') result = await fromDevice();
      else {
        cloudTarget = true;
        result = await fromCloud(target);
      }
      await persist(
        [...messages, { role: 'assistant', content: result.text, readout: result.readout, record: result.record }],
        result.record,
      );
    } catch (cause) {
      const draft = options.draft;
      if (draft !== undefined && cloudTarget && !received) {
        // Nothing came back from the server: the question goes back into the box rather than into the record.
        setConversation((c) => ({ ...c, messages: messages.slice(0, -1) }));
        setInput((current) => current || draft);
        setError(`${chatErrorText(cause)} Your message is back in the box: nothing was sent to be answered.`);
      } else {
        setError(chatErrorText(cause));
        await persist(messages);
      }
    } finally {
      clearInterval(sample);
      run.current = null;
      setBusy(false);
    }
  }

  /**
   * Auto: this device when it runs its model well (not less than half as fast as the fastest peer sharing one, or
   * nobody shares), else a peer that shares one, else the first cloud provider this person may use.
   */
  function resolveRoute(): string {
    if (route !== 'auto') return route;
    const mine = meshNode.capabilities().tokensPerSecond;
    const fastest = Math.max(
      0,
      ...(meshRoom?.node.list() ?? [])
        .filter((p) => p.capabilities?.sharing)
        .map((p) => p.capabilities?.tokensPerSecond ?? 0),
    );
    if (loaded && (!shared.length || mine === null || fastest === 0 || mine >= fastest / 2)) return 'device';
    if (shared.length) return 'mesh';
    if (autoCloud) return autoCloud.id;
    throw new Error(
      'Auto found nothing to answer with: load a model, join a room where someone shares one, or go online for a cloud provider',
    );
  }

  /** Why a cloud provider cannot take this message now (offline), or null. */
  function offlineRefusal(): string | null {
    if (online || route === 'device' || route === 'mesh' || route === 'auto') return null;
    const label = configured.find((p) => p.id === route)?.label ?? route;
    return `You are offline, and ${label} answers through the server: your message was not sent and is still in the box. Send it when the network is back, or answer with this device or a peer under "Answer with".`;
  }

  function send() {
    const text = input.trim();
    if (!text || busy || syncing) return;
    const refusal = offlineRefusal();
    if (refusal) {
      setError(refusal);
      return;
    }
    setInput('');
    void answer([...conversation.messages, { role: 'user', content: text }], { draft: text });
  }

  function regenerate() {
    const lastUser = conversation.messages.findLastIndex((m) => m.role === 'user');
    if (lastUser < 0 || busy) return;
    void answer(conversation.messages.slice(0, lastUser + 1));
  }

  function startNew() {
    if (busy) return;
    inferenceEngine().reset();
    setConversation({ id: crypto.randomUUID(), title: 'New chat', updatedAt: Date.now(), messages: [] });
  }

  // A cloud route offline can still press Send: the refusal says why, and the draft stays.
  const canSend = route === 'device' ? Boolean(loaded) : route === 'mesh' ? shared.length > 0 : true;
  const lastIsAnswer = conversation.messages.at(-1)?.role === 'assistant';

  return (
    <div className="chat-layout">
      <aside className="conversations" aria-label="Conversations on this device">
        <button type="button" onClick={startNew} disabled={busy}>
          New chat
        </button>
        <ul>
          {history.map((c) => (
            <li key={c.id} data-current={c.id === conversation.id || c.id === conversation.serverId}>
              <button
                type="button"
                className="link"
                disabled={busy}
                onClick={() => void store.open(c.id).then(setConversation, (cause: unknown) => setError(String(cause)))}
              >
                {c.title}
              </button>
              <button
                type="button"
                className="icon"
                aria-label={`Delete ${c.title}`}
                onClick={() => void store.remove(c.id).then(refreshHistory)}
              >
                ×
              </button>
            </li>
          ))}
        </ul>
        <p className="muted small" data-testid="conversations-kept">
          {store.onServer
            ? 'Kept with your account.'
            : knownAccount() && !online
              ? 'Kept on this device while offline; saved to your account when the network is back.'
              : 'Kept on this device only.'}
        </p>
      </aside>
      <section className="chat" aria-label="Chat">
        <div className="chat-toolbar">
          <label>
            Answer with{' '}
            <select
              data-testid="chat-route"
              value={route}
              onChange={(event) => setRoute(event.target.value)}
              disabled={busy}
            >
              <option value="auto">Auto (this device, else a peer, else the cloud)</option>
              <option value="device">
                {loaded ? `${loaded.entry.name} on this device` : 'this device (no model loaded)'}
              </option>
              <option value="mesh">
                {shared[0]
                  ? `${shared[0].ref.id} on a peer in ${meshRoom?.room} (${shared[0].peers} sharing)`
                  : meshRoom
                    ? `a peer in ${meshRoom.room} (nobody shares now)`
                    : 'a peer (join a room first)'}
              </option>
              {configured.map((p) => (
                <option key={p.id} value={p.id} disabled={!online || !usable(p)}>
                  {p.label}
                  {!online ? ' (unavailable offline)' : usable(p) ? '' : ' (for accounts: sign up or log in)'}
                </option>
              ))}
            </select>
          </label>
          <label>
            Temperature{' '}
            <input
              type="number"
              data-testid="chat-temperature"
              min={0}
              max={2}
              step={0.1}
              value={temperature}
              disabled={busy}
              onChange={(event) => setTemperature(Math.min(2, Math.max(0, Number(event.target.value) || 0)))}
            />
          </label>
          <label>
            Seed{' '}
            <input
              type="text"
              inputMode="numeric"
              data-testid="chat-seed"
              className="narrow"
              placeholder="random"
              pattern="[0-9]*"
              maxLength={10}
              value={seed}
              disabled={busy}
              onChange={(event) => setSeed(event.target.value.replace(/[^0-9]/g, ''))}
            />
          </label>
          {!online && (
            <span className="muted" data-testid="providers-offline">
              Cloud providers are unavailable offline
            </span>
          )}
          {loaded && route === 'device' && (
            <span className="badge badge-accent" data-testid="backend-badge">
              {BACKEND_LABEL[loaded.backend]}
            </span>
          )}
          {!loaded && route === 'device' && <Link href="/models">Load a model</Link>}
        </div>
        {!loaded && (route === 'device' || route === 'auto') && <NoModelOffer />}
        {loaded?.offline && route !== 'mesh' && (
          <p className="small muted" data-testid="offline-ready" data-state={loaded.offline.state}>
            {loaded.offline.message}
          </p>
        )}
        {syncing && (
          <p className="small muted" role="status" data-testid="chat-syncing">
            Saving conversations kept on this device while offline to your account…
          </p>
        )}
        <ol className="messages" aria-live="polite">
          {conversation.messages.map((message, i) => (
            <li key={i} className={`message message-${message.role}`} data-testid={`chat-message-${message.role}`}>
              {message.role === 'assistant' ? (
                <Suspense fallback={<p>{message.content}</p>}>
                  <MarkdownText text={message.content} />
                </Suspense>
              ) : (
                <p>{message.content}</p>
              )}
              {message.readout && (
                <small className="readout" data-testid="answer-readout">
                  {message.readout}
                </small>
              )}
            </li>
          ))}
        </ol>
        {busy && <Sparkline values={rates} label="Tokens per second while generating" />}
        {error && (
          <p className="error" role="alert">
            {error}
          </p>
        )}
        <form
          className="composer"
          onSubmit={(event) => {
            event.preventDefault();
            send();
          }}
        >
          <label className="sr-only" htmlFor="chat-input">
            Message
          </label>
          <textarea
            id="chat-input"
            data-testid="chat-input"
            rows={2}
            value={input}
            placeholder={canSend ? 'Write a message (Enter sends, Shift+Enter for a new line)' : 'Load a model first'}
            onChange={(event) => setInput(event.target.value)}
            onKeyDown={(event) => {
              if (event.key === 'Enter' && !event.shiftKey) {
                event.preventDefault();
                send();
              }
            }}
          />
          <button
            type="submit"
            className="primary"
            data-testid="chat-send"
            disabled={!canSend || busy || !input.trim()}
          >
            Send
          </button>
          <button type="button" data-testid="chat-stop" disabled={!busy} onClick={() => run.current?.stop()}>
            Stop
          </button>
          <button type="button" data-testid="chat-regenerate" disabled={busy || !lastIsAnswer} onClick={regenerate}>
            Regenerate
          </button>
        </form>
      </section>
    </div>
  );
}

/** The seed typed in the settings, or a fresh one for each answer when it is empty or not a 32-bit integer. */
function seedFrom(text: string): number {
  const fixed = Number.parseInt(text, 10);
  return Number.isInteger(fixed) && fixed >= 0 && fixed <= 0xffff_ffff ? fixed : Math.floor(Math.random() * 2 ** 32);
}

/** The conversation with these messages, titled and stamped now. */
function withMessages(conversation: Conversation, messages: ChatItem[]): Conversation {
  return { ...conversation, messages, title: titleOf(messages), updatedAt: Date.now() };
}
