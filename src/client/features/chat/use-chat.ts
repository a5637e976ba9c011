// The chat's state and streaming, out of the page: the conversation, its settings, the answer running now and the
// actions on it (send, stop, regenerate, edit, delete), where conversations are kept, and the offline sync. Each
// route's answer is in routes/ (routes/start.ts picks one), the conversation list in use-conversation-list.ts.
import { useRef } from 'react';
import { keptBox, useKeptState } from '../../lib/kept-state.ts';
import type { EngineMessage } from '../../../shared/engine-protocol.ts';
import { MeshJobError } from '../../../shared/mesh/job-requester.ts';
import { PipelineJobError } from '../../../shared/pipeline/pipeline-requester.ts';
import { inferenceEngine } from '../../workers/inference.ts';
import { chatErrorText } from './chat-errors.ts';
import { type AnswerRecord, type ConversationStore, knownAccount } from './conversation-store.ts';
import { useConversationList } from './use-conversation-list.ts';
import { useOfflineSync } from './use-offline-sync.ts';
import { usePeerNotice } from './use-peer-notice.ts';
import { type ChatItem, type Conversation, withMessages, withServerIds } from './conversations.ts';
import { type ResolvedRoute, type Route, resolveRoute } from './route.ts';
import type { Answer, AnswerResult } from './routes/answer.ts';
import { type RouteContext, startAnswer } from './routes/start.ts';
import { meshNode } from '../mesh/mesh-store.ts';
import { type ChatSettings, DEFAULT_SETTINGS, withSystemPrompt } from './settings.ts';

export interface ChatContext extends RouteContext {
  route: Route;
  store: ConversationStore;
  accountId: string | null;
  online: boolean;
}

/** A mesh answer that failed for want of peers (not stopped): Auto asks a cloud provider instead. */
const meshUnanswered = (cause: unknown): cause is Error =>
  (cause instanceof MeshJobError && cause.code !== 'CANCELLED') ||
  (cause instanceof PipelineJobError && cause.code !== 'ABORTED');

const newConversation = (settings: ChatSettings): Conversation => ({
  id: crypto.randomUUID(),
  title: 'New chat',
  updatedAt: Date.now(),
  messages: [],
  settings,
});

export function useChat(context: ChatContext) {
  const { route, loaded, meshRoom, shared, pipelines, usableProviders, store, accountId, online } = context;
  // Kept while another screen is open (src/client/lib/kept-state.ts): coming back shows the same conversation, draft
  // and answer, still streaming if it was.
  const [conversation, setConversation] = useKeptState<Conversation>('chat:conversation', () =>
    newConversation(DEFAULT_SETTINGS),
  );
  const settings = conversation.settings ?? DEFAULT_SETTINGS;
  const [input, setInput] = useKeptState('chat:input', () => '');
  const [error, setError] = useKeptState<string | null>('chat:error', () => null);
  const [rates, setRates] = useKeptState<number[]>('chat:rates', () => []);
  const [busy, setBusy] = useKeptState('chat:busy', () => false);
  const running = keptBox<Answer | null>('chat:running', null);

  const list = useConversationList({ store, accountId, busy, settings, setConversation, setError });
  const { refreshHistory } = list;
  const syncing = useOfflineSync(accountId, online, setConversation, refreshHistory, setError);
  const { notice, peerNoticeAccepted } = usePeerNotice();

  // Settings follow the conversation where it is kept (so an account's follow it to another device), half a second
  // after the last change; a turn sent before then carries them itself.
  const settingsTimer = useRef<ReturnType<typeof setTimeout> | null>(null);
  const cancelSettingsSave = () => {
    if (settingsTimer.current) clearTimeout(settingsTimer.current);
    settingsTimer.current = null;
  };

  const autoCloud = online ? usableProviders[0] : undefined;

  /**
   * Signed in but offline: the conversation is kept here for the account, which gets it (and the edits made to it
   * here) when the network returns. `before`: its messages before this turn.
   */
  function keptForAccount(next: Conversation, before: ChatItem[]): Conversation {
    const waitingFor = store.onServer ? null : (accountId ?? knownAccount());
    if (!waitingFor || next.syncFor?.accountId === waitingFor) return next;
    // Counted too for versions of the app that go by the count: everything up to the last answer before this turn.
    const synced = next.serverId ? before.findLastIndex((m) => m.role === 'assistant') + 1 : 0;
    return { ...next, syncFor: { accountId: waitingFor, synced } };
  }

  /** Keeps the conversation after an answer (`record`), or after a failed one on the device only. */
  async function persist(base: Conversation, messages: ChatItem[], record?: AnswerRecord) {
    const next = keptForAccount(withMessages(base, messages), record ? messages.slice(0, -1) : messages);
    setConversation(next);
    if (!record && store.onServer) return;
    try {
      const saved = await store.saveTurn(next, record ?? { route: 'LOCAL' });
      if (store.onServer) setConversation((c) => (c.id === saved.id ? withServerIds(c, saved) : c));
    } catch (cause) {
      setError(`The answer is here but could not be saved: ${cause instanceof Error ? cause.message : String(cause)}`);
    }
    refreshHistory();
  }

  const start = (target: ResolvedRoute, prompt: EngineMessage[]): Answer =>
    startAnswer(target, prompt, settings, context);

  /**
   * `draft`: the text typed for this answer, put back in the box when a cloud provider could not be reached.
   * `replacing`: the index of the first message this answer replaces (an edited question, a regenerated answer):
   * dropped where the conversation is kept once the answer is on its way (not when the peer notice is cancelled).
   */
  async function answer(
    base: Conversation,
    messages: ChatItem[],
    options: { draft?: string; replacing?: number } = {},
  ) {
    let cloudTarget = false;
    let received = false;
    cancelSettingsSave();
    setError(null);
    setBusy(true);
    setRates([]);
    const show = (content: string) =>
      setConversation({ ...base, messages: [...messages, { role: 'assistant', content }] });
    const stamps: number[] = [];
    const sample = setInterval(() => {
      const now = performance.now();
      setRates((r) => [...r.slice(-59), stamps.filter((t) => t > now - 1000).length]);
    }, 250);
    const consume = async (answer: Answer): Promise<AnswerResult> => {
      running.current = answer;
      let text = '';
      for await (const piece of answer) {
        received = true;
        stamps.push(performance.now());
        text += piece;
        show(text);
      }
      return answer.result;
    };
    try {
      const prompt = withSystemPrompt(
        settings,
        messages.map(({ role, content }) => ({ role, content })),
      );
      const target = resolveRoute(route, {
        modelLoaded: Boolean(loaded),
        // A model the room runs across its peers is a peer's answer too.
        shared: shared.length + pipelines.length,
        mine: meshNode.capabilities().tokensPerSecond,
        fastest: Math.max(0, ...shared.map((m) => m.tokensPerSecond ?? 0)),
        autoCloud: autoCloud?.id,
      });
      cloudTarget = target.kind === 'cloud';
      if (target.kind === 'mesh' && meshRoom && !(await peerNoticeAccepted(meshRoom.room))) {
        // Not sent: the conversation is as it was, and a typed question goes back in the box.
        setConversation(base);
        if (options.draft !== undefined) setInput((current) => current || (options.draft ?? ''));
        return;
      }
      if (options.replacing !== undefined) {
        try {
          await store.dropFrom(base, options.replacing);
        } catch (cause) {
          // Nothing replaced: the conversation stays as it is kept.
          setConversation(base);
          setError(chatErrorText(cause));
          return;
        }
      }
      show('');
      let result: AnswerResult;
      try {
        result = await consume(start(target, prompt));
      } catch (cause) {
        // Auto: when the mesh cannot answer (nobody left who shares the model), a cloud provider can.
        if (route.kind !== 'auto' || !meshUnanswered(cause) || !autoCloud) throw cause;
        show('');
        result = await consume(start({ kind: 'cloud', provider: autoCloud.id }, prompt));
        result.readout += ` · the mesh could not answer: ${cause.message}`;
      }
      const { text, readout, record } = result;
      void result.corrected?.then((fix) => {
        if (!fix) return;
        setConversation((c) => {
          const fixed = [...c.messages];
          const at = fixed.findLastIndex((m) => m.role === 'assistant' && m.content === text);
          if (at >= 0) fixed[at] = { role: 'assistant', content: fix.text, readout: fix.readout };
          return { ...c, messages: fixed };
        });
      });
      await persist(base, [...messages, { role: 'assistant', content: text, readout, record }], record);
    } catch (cause) {
      const draft = options.draft;
      if (draft !== undefined && cloudTarget && !received) {
        // Nothing came back from the server: the question goes back into the box rather than into the record.
        setConversation({ ...base, messages: messages.slice(0, -1) });
        setInput((current) => current || draft);
        setError(`${chatErrorText(cause)} Your message is back in the box: nothing was sent to be answered.`);
      } else {
        setError(chatErrorText(cause));
        await persist(base, messages);
      }
    } finally {
      clearInterval(sample);
      running.current = null;
      setBusy(false);
    }
  }

  /** Why a cloud provider cannot take this message now (offline), or null. */
  function offlineRefusal(): string | null {
    if (online || route.kind !== 'cloud') return null;
    const label = usableProviders.find((p) => p.id === route.provider)?.label ?? route.provider;
    return `You are offline, and ${label} answers through the server: your message was not sent and is still in the box. Send it when the network is back, or answer with this device or a peer under "Answer with".`;
  }

  /** Runs `change` on the conversation where it is kept, then `then`; a refusal is shown and nothing else runs. */
  function whereKept(change: Promise<void>, then: () => unknown) {
    setBusy(true);
    change.then(
      () => {
        setBusy(false);
        then();
      },
      (cause: unknown) => {
        setBusy(false);
        setError(chatErrorText(cause));
      },
    );
  }

  return {
    conversation,
    settings,
    ...list,
    input,
    setInput,
    error,
    setError,
    rates,
    busy,
    syncing,
    /** The notice before a first prompt goes to a peer in this room, while it waits for an answer. */
    notice,
    send() {
      const text = input.trim();
      if (!text || busy || syncing) return;
      const refusal = offlineRefusal();
      if (refusal) return setError(refusal);
      setInput('');
      void answer(conversation, [...conversation.messages, { role: 'user', content: text }], { draft: text });
    },
    stop: () => running.current?.stop(),
    /** Answers the last question again: the answers after it are replaced, on the server too. */
    regenerate() {
      const lastUser = conversation.messages.findLastIndex((m) => m.role === 'user');
      if (lastUser < 0 || busy) return;
      void answer(conversation, conversation.messages.slice(0, lastUser + 1), { replacing: lastUser + 1 });
    },
    /** Replaces user message `index` with `text` and answers it again: the messages after it are replaced. */
    edit(index: number, text: string) {
      const content = text.trim();
      if (!content || busy || conversation.messages[index]?.role !== 'user') return;
      void answer(conversation, [...conversation.messages.slice(0, index), { role: 'user', content }], {
        replacing: index,
      });
    },
    /** Deletes message `index`, where the conversation is kept too. */
    remove(index: number) {
      if (busy) return;
      const base = conversation;
      whereKept(store.removeMessage(base, index), () =>
        persist(
          base,
          base.messages.filter((_, i) => i !== index),
        ),
      );
    },
    updateSettings(patch: Partial<ChatSettings>) {
      const next = { ...conversation, settings: { ...settings, ...patch } };
      setConversation((c) => ({ ...c, settings: { ...(c.settings ?? DEFAULT_SETTINGS), ...patch } }));
      cancelSettingsSave();
      settingsTimer.current = setTimeout(() => {
        settingsTimer.current = null;
        store
          .saveSettings(keptForAccount(next, next.messages))
          .catch((cause: unknown) => setError(`The settings could not be saved: ${chatErrorText(cause)}`));
      }, 500);
    },
    startNew() {
      if (busy) return;
      inferenceEngine().reset();
      setConversation(newConversation(settings));
    },
  };
}

export type ChatState = ReturnType<typeof useChat>;
