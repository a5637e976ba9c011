// The list of conversations: new chat, search (titles and text), open, rename, delete, export the open one as
// Markdown or JSON, import one from JSON; beside the chat on wide screens, in a drawer on a phone.
import { FileDownIcon, FileJsonIcon, FileUpIcon, PencilIcon, PlusIcon, Trash2Icon } from 'lucide-react';
import { useState } from 'react';
import { Button } from '../../components/ui/button.tsx';
import type { ConversationSummary } from './conversation-store.ts';

export interface ConversationListProps {
  history: ConversationSummary[];
  currentIds: (string | null | undefined)[];
  busy: boolean;
  keptNote: string;
  query: string;
  onQuery(query: string): void;
  onNew(): void;
  onOpen(id: string): void;
  onRemove(id: string): void;
  onRename(id: string, title: string): void;
  onExport(kind: 'markdown' | 'json'): void;
  onImport(file: File): void;
  canExport: boolean;
}

function RenameBox({ title, onDone }: { title: string; onDone(title: string | null): void }) {
  const [text, setText] = useState(title);
  return (
    <form
      className="flex min-w-0 grow gap-1"
      onSubmit={(event) => {
        event.preventDefault();
        onDone(text);
      }}
    >
      <label className="sr-only" htmlFor="conversation-title">
        New title
      </label>
      <input
        id="conversation-title"
        data-testid="conversation-title"
        className="min-w-0 grow"
        autoFocus
        maxLength={200}
        value={text}
        onChange={(event) => setText(event.target.value)}
        onKeyDown={(event) => event.key === 'Escape' && onDone(null)}
      />
      <Button type="submit" size="sm" disabled={!text.trim()}>
        Save
      </Button>
    </form>
  );
}

export function ConversationList(props: ConversationListProps) {
  const { history, currentIds, busy } = props;
  const [renaming, setRenaming] = useState<string | null>(null);
  return (
    <>
      <Button onClick={props.onNew} disabled={busy}>
        <PlusIcon />
        New chat
      </Button>
      <label className="sr-only" htmlFor="conversation-search">
        Search conversations
      </label>
      <input
        id="conversation-search"
        type="search"
        data-testid="conversation-search"
        className="mt-2 min-h-11 w-full sm:min-h-0"
        placeholder="Search titles and text"
        maxLength={200}
        value={props.query}
        onChange={(event) => props.onQuery(event.target.value)}
      />
      <ul>
        {history.map((c) => (
          <li key={c.id} data-current={currentIds.includes(c.id)} data-testid="conversation-item" className="min-w-0">
            {renaming === c.id ? (
              <RenameBox
                title={c.title}
                onDone={(title) => {
                  setRenaming(null);
                  if (title !== null) props.onRename(c.id, title);
                }}
              />
            ) : (
              <>
                <button
                  type="button"
                  className="link min-h-11 min-w-0 grow truncate text-left sm:min-h-0"
                  disabled={busy}
                  onClick={() => props.onOpen(c.id)}
                >
                  {c.title}
                </button>
                <Button
                  variant="ghost"
                  size="icon"
                  aria-label={`Rename ${c.title}`}
                  data-testid="conversation-rename"
                  onClick={() => setRenaming(c.id)}
                >
                  <PencilIcon />
                </Button>
                <Button
                  variant="ghost"
                  size="icon"
                  aria-label={`Delete ${c.title}`}
                  onClick={() => props.onRemove(c.id)}
                >
                  <Trash2Icon />
                </Button>
              </>
            )}
          </li>
        ))}
      </ul>
      <div className="flex flex-wrap gap-1">
        <Button
          size="sm"
          data-testid="conversation-export-markdown"
          disabled={!props.canExport}
          onClick={() => props.onExport('markdown')}
        >
          <FileDownIcon />
          Markdown
        </Button>
        <Button
          size="sm"
          data-testid="conversation-export-json"
          disabled={!props.canExport}
          onClick={() => props.onExport('json')}
        >
          <FileJsonIcon />
          JSON
        </Button>
        <Button size="sm" asChild>
          <label>
            <FileUpIcon />
            Import
            <input
              type="file"
              accept="application/json,.json"
              className="sr-only"
              data-testid="conversation-import"
              disabled={busy}
              onChange={(event) => {
                const file = event.target.files?.[0];
                event.target.value = '';
                if (file) props.onImport(file);
              }}
            />
          </label>
        </Button>
      </div>
      <p className="muted small" data-testid="conversations-kept">
        {props.keptNote}
      </p>
    </>
  );
}
