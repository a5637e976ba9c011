// The Chat screen: layout only. The conversation and its answers live in useChat (use-chat.ts), each route in
// routes/, the pieces in small components: the conversation list (a drawer on a phone), the toolbar with the
// route and the sampling settings, the messages, and the composer.
import { Suspense, lazy, useEffect, useState, useSyncExternalStore } from 'react';
import { Link } from 'wouter';
import { BACKEND_LABEL } from '../../../shared/engine-protocol.ts';
import { Button } from '../../components/ui/button.tsx';
import { useOnline } from '../../lib/pwa.ts';
import { useKeptState } from '../../lib/kept-state.ts';
import { api, retryTransient } from '../../lib/trpc.ts';
import { useMeshRoom } from '../mesh/mesh-store.ts';
import { useCatalogue } from '../models/catalogue.ts';
import { useLoadedModel } from '../models/model-store.ts';
import type { ModelChoice } from './chat-settings.tsx';
import { Composer } from './composer.tsx';
import { download, fileName, toJson, toMarkdown } from './conversation-file.ts';
import { ConversationList } from './conversation-list.tsx';
import { knownAccount } from './conversation-sync.ts';
import { deviceStore } from './device-store.ts';
import { serverStore } from './server-store.ts';
import { MessageList } from './message-list.tsx';
import { NoModelOffer } from './no-model.tsx';
import { accountPresets, devicePresets } from './presets.ts';
import { parseRoute, routeValue } from './route.ts';
import { sharedModels } from './routes/mesh.ts';
import { pipelineModels, stagesText } from '../mesh/room-pipelines.ts';
import { SETTINGS_LIMITS } from './settings.ts';
import { Sparkline } from './sparkline.tsx';
import { type ChatState, useChat } from './use-chat.ts';

// Radix's popover and dialog come after the first paint (bench/pwa.ts: initial JS under 200 KB gzip).
const ChatSettingsPanel = lazy(() => import('./chat-settings.tsx'));
const ConversationsDrawer = lazy(() => import('./conversations-drawer.tsx'));
const PeerNoticeDialog = lazy(() => import('./peer-notice-dialog.tsx'));
const noSubscribe = () => () => {};
const noSnapshot = () => null;

/** Ctrl/Cmd+K starts a new chat, wherever the focus is on this screen. */
function useNewChatKey(chat: ChatState) {
  useEffect(() => {
    const onKey = (event: KeyboardEvent) => {
      if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === 'k') {
        event.preventDefault();
        chat.startNew();
      }
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  });
}

export function ChatPage() {
  const loaded = useLoadedModel();
  const meshRoom = useMeshRoom();
  // Re-render as peers come, go and change what they share.
  useSyncExternalStore(meshRoom?.subscribe ?? noSubscribe, meshRoom?.getSnapshot ?? noSnapshot);
  const shared = sharedModels(meshRoom);
  // Models whose layers the room's peers host as stages, that nobody shares whole: a pipeline job runs them.
  const catalogue = useCatalogue();
  const pipelines = pipelineModels(meshRoom, catalogue.data?.entries ?? [], new Set(shared.map((m) => m.ref.id)));
  const online = useOnline();
  const providers = api.chat.providers.useQuery(undefined, { enabled: online, retry: retryTransient });
  const me = api.auth.me.useQuery(undefined, { enabled: online, retry: retryTransient });
  const account = me.data?.kind === 'ACCOUNT';
  // Accounts keep their conversations on the server; guests (and anyone offline) on this device.
  const store = account && online ? serverStore : deviceStore;
  const configured = (providers.data ?? []).filter((p) => p.configured);
  // Providers that cost money are for accounts unless the server opens them to guests (docs/SECURITY.md).
  const usable = (provider: { openToGuests: boolean }) => account || provider.openToGuests;
  const [routeText, setRouteText] = useKeptState('chat:route', () => 'device');
  const route = parseRoute(routeText);
  const chat = useChat({
    route,
    loaded,
    meshRoom,
    shared,
    pipelines,
    usableProviders: configured.filter(usable),
    store,
    accountId: account ? (me.data?.id ?? null) : null,
    online,
  });
  const [editing, setEditing] = useState<number | null>(null);
  useNewChatKey(chat);
  const { conversation, settings, busy } = chat;

  // A cloud route offline can still press Send: the refusal says why, and the draft stays.
  const canSend =
    route.kind === 'device' ? Boolean(loaded) : route.kind === 'mesh' ? shared.length + pipelines.length > 0 : true;
  const provider = route.kind === 'cloud' ? configured.find((p) => p.id === route.provider) : undefined;
  const models: ModelChoice[] | null =
    route.kind === 'mesh'
      ? [
          { value: '', label: 'The most shared model' },
          ...shared.map((m) => ({
            value: m.ref.id,
            label: `${m.ref.id} · ${m.peers.join(', ')}${m.tokensPerSecond === null ? '' : ` · ${m.tokensPerSecond.toFixed(1)} tok/s`}`,
          })),
          ...pipelines.map((m) => ({ value: m.entry.id, label: `${m.entry.id} · ${stagesText(m.stages)}` })),
        ]
      : provider
        ? [
            { value: '', label: `${provider.defaultModel} (default)` },
            ...(provider.models ?? []).filter((m) => m !== provider.defaultModel).map((m) => ({ value: m, label: m })),
          ]
        : null;
  const list = {
    history: chat.history,
    currentIds: [conversation.id, conversation.serverId],
    busy,
    keptNote: store.onServer
      ? 'Kept with your account.'
      : knownAccount() && !online
        ? 'Kept on this device while offline; saved to your account when the network is back.'
        : 'Kept on this device only.',
    query: chat.query,
    onQuery: chat.setQuery,
    onNew: chat.startNew,
    onOpen: chat.open,
    onRemove: chat.removeConversation,
    onRename: chat.rename,
    onImport: chat.importFile,
    canExport: conversation.messages.length > 0,
    onExport: (kind: 'markdown' | 'json') =>
      kind === 'json'
        ? download(fileName(conversation, 'json'), toJson(conversation), 'application/json')
        : download(fileName(conversation, 'md'), toMarkdown(conversation), 'text/markdown'),
  };

  return (
    <div className="chat-layout min-w-0">
      <aside className="conversations hidden min-w-0 md:block" aria-label="Conversations">
        <ConversationList {...list} />
      </aside>
      <section className="chat flex min-w-0 flex-col" aria-label="Chat">
        {/* The screen's one level-one heading, named after the open conversation, for screen readers and the outline
            (axe: page-has-heading-one); on screen the conversation list and the messages already say it. */}
        <h1 className="sr-only" data-testid="chat-title">
          Chat: {conversation.title}
        </h1>
        <div className="chat-toolbar min-w-0">
          <span className="md:hidden">
            <Suspense fallback={<Button size="icon" aria-label="Conversations" disabled />}>
              <ConversationsDrawer {...list} />
            </Suspense>
          </span>
          <label className="flex min-w-0 max-w-full items-center gap-2">
            Answer with
            <select
              data-testid="chat-route"
              className="min-h-11 min-w-0 max-w-full sm:min-h-0"
              value={routeValue(route)}
              onChange={(event) => setRouteText(event.target.value)}
              disabled={busy}
            >
              <option value="auto">Auto (this device, else a peer, else the cloud)</option>
              <option value="device">
                {loaded ? `${loaded.entry.name} on this device` : 'this device (no model loaded)'}
              </option>
              <option value="mesh">
                {shared[0]
                  ? `${shared[0].ref.id} on a peer in ${meshRoom?.room} (${shared[0].peers.length} sharing)`
                  : pipelines[0]
                    ? `${pipelines[0].entry.id} across ${pipelines[0].stages.length} peers in ${meshRoom?.room}`
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
          <label className="flex items-center gap-2">
            Temperature
            <input
              type="number"
              data-testid="chat-temperature"
              className="min-h-11 w-20 sm:min-h-0"
              min={0}
              max={2}
              step={0.1}
              value={settings.temperature}
              disabled={busy}
              onChange={(event) =>
                chat.updateSettings({ temperature: Math.min(2, Math.max(0, Number(event.target.value) || 0)) })
              }
            />
          </label>
          <label className="flex items-center gap-2">
            Seed
            <input
              type="text"
              inputMode="numeric"
              data-testid="chat-seed"
              className="narrow min-h-11 sm:min-h-0"
              placeholder="random"
              pattern="[0-9]*"
              maxLength={10}
              value={settings.seed}
              disabled={busy}
              onChange={(event) => {
                const digits = event.target.value.replace(/[^0-9]/g, '');
                chat.updateSettings({ seed: digits ? Math.min(SETTINGS_LIMITS.seed, Number(digits)) : '' });
              }}
            />
          </label>
          <Suspense fallback={<Button data-testid="chat-settings" aria-label="Chat settings" disabled />}>
            <ChatSettingsPanel
              settings={settings}
              onChange={chat.updateSettings}
              models={models}
              disabled={busy}
              presets={account && online ? accountPresets : devicePresets}
            />
          </Suspense>
          {!online && (
            <span className="muted" data-testid="providers-offline">
              Cloud providers are unavailable offline
            </span>
          )}
          {loaded && route.kind === 'device' && (
            <span className="badge badge-accent" data-testid="backend-badge">
              {BACKEND_LABEL[loaded.backend]}
            </span>
          )}
          {!loaded && route.kind === 'device' && <Link href="/models">Load a model</Link>}
          {route.kind === 'mesh' && !shared[0] && pipelines[0] && (
            <span className="small muted" data-testid="chat-pipeline" data-stages={pipelines[0].stages.length}>
              {pipelines[0].entry.id} {stagesText(pipelines[0].stages)}
            </span>
          )}
        </div>
        {!loaded && (route.kind === 'device' || route.kind === 'auto') && <NoModelOffer />}
        {loaded?.offline && route.kind !== 'mesh' && (
          <p className="small muted" data-testid="offline-ready" data-state={loaded.offline.state}>
            {loaded.offline.message}
          </p>
        )}
        {chat.syncing && (
          <p className="small muted" role="status" data-testid="chat-syncing">
            Saving conversations kept on this device while offline to your account…
          </p>
        )}
        <MessageList
          messages={conversation.messages}
          actions={{ busy, editing, setEditing, edit: chat.edit, remove: chat.remove }}
        />
        {busy && <Sparkline values={chat.rates} label="Tokens per second while generating" />}
        {chat.error && (
          <p className="error" role="alert">
            {chat.error}
          </p>
        )}
        {chat.notice && (
          <Suspense>
            <PeerNoticeDialog notice={chat.notice} />
          </Suspense>
        )}
        <Composer
          input={chat.input}
          setInput={chat.setInput}
          canSend={canSend}
          busy={busy}
          canRegenerate={conversation.messages.at(-1)?.role === 'assistant'}
          onSend={chat.send}
          onStop={chat.stop}
          onRegenerate={chat.regenerate}
          onEditLast={() => {
            const last = conversation.messages.findLastIndex((m) => m.role === 'user');
            if (last >= 0 && !busy) setEditing(last);
          }}
        />
      </section>
    </div>
  );
}
