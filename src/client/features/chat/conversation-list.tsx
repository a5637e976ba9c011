// The list of conversations: new chat, open, delete; beside the chat on wide screens, in a drawer on a phone.
import { PlusIcon, Trash2Icon } from 'lucide-react';
import { Button } from '../../components/ui/button.tsx';
import type { ConversationSummary } from './conversation-store.ts';

export function ConversationList({
  history,
  currentIds,
  busy,
  keptNote,
  onNew,
  onOpen,
  onRemove,
}: {
  history: ConversationSummary[];
  currentIds: (string | null | undefined)[];
  busy: boolean;
  keptNote: string;
  onNew(): void;
  onOpen(id: string): void;
  onRemove(id: string): void;
}) {
  return (
    <>
      <Button onClick={onNew} disabled={busy}>
        <PlusIcon />
        New chat
      </Button>
      <ul>
        {history.map((c) => (
          <li key={c.id} data-current={currentIds.includes(c.id)} data-testid="conversation-item" className="min-w-0">
            <button
              type="button"
              className="link min-h-11 min-w-0 truncate text-left sm:min-h-0"
              disabled={busy}
              onClick={() => onOpen(c.id)}
            >
              {c.title}
            </button>
            <Button variant="ghost" size="icon" aria-label={`Delete ${c.title}`} onClick={() => onRemove(c.id)}>
              <Trash2Icon />
            </Button>
          </li>
        ))}
      </ul>
      <p className="muted small" data-testid="conversations-kept">
        {keptNote}
      </p>
    </>
  );
}
