// The conversation's messages: markdown answers with their readouts, and each message's actions (copy, edit and
// resend a question, delete).
import { PencilIcon, Trash2Icon } from 'lucide-react';
import { Suspense, lazy, useEffect, useState } from 'react';
import { Button } from '../../components/ui/button.tsx';
import type { ChatItem } from './conversations.ts';
import { CopyButton } from './copy-button.tsx';

// A chunk of its own (it is large), fetched as the Chat screen opens rather than with the first answer: a page
// that outlives its network (offline after a hard reload, which skips the service worker) still renders answers,
// and as plain text when even that failed.
const loadMarkdown = () =>
  import('./markdown.tsx').catch(() => ({ default: ({ text }: { text: string }) => <p>{text}</p> }));
const MarkdownText = lazy(loadMarkdown);

interface MessageActions {
  busy: boolean;
  /** The index of the user message being edited, or null. */
  editing: number | null;
  setEditing(index: number | null): void;
  edit(index: number, text: string): void;
  remove(index: number): void;
}

function EditBox({ initial, onSave, onCancel }: { initial: string; onSave(text: string): void; onCancel(): void }) {
  const [text, setText] = useState(initial);
  return (
    <form
      className="flex flex-col gap-2"
      onSubmit={(event) => {
        event.preventDefault();
        onSave(text);
      }}
    >
      <label className="sr-only" htmlFor="message-edit-text">
        Edit your message
      </label>
      <textarea
        id="message-edit-text"
        data-testid="message-edit-text"
        autoFocus
        rows={3}
        value={text}
        onChange={(event) => setText(event.target.value)}
        onKeyDown={(event) => {
          if (event.key === 'Escape') onCancel();
          if (event.key === 'Enter' && !event.shiftKey) {
            event.preventDefault();
            onSave(text);
          }
        }}
      />
      <div className="flex flex-wrap justify-end gap-2">
        <Button onClick={onCancel}>Cancel</Button>
        <Button type="submit" variant="default" data-testid="message-edit-save" disabled={!text.trim()}>
          Save and resend
        </Button>
      </div>
    </form>
  );
}

function Message({ message, index, actions }: { message: ChatItem; index: number; actions: MessageActions }) {
  const editing = actions.editing === index;
  return (
    <li className={`message message-${message.role} group`} data-testid={`chat-message-${message.role}`}>
      {editing ? (
        <EditBox
          initial={message.content}
          onCancel={() => actions.setEditing(null)}
          onSave={(text) => {
            actions.setEditing(null);
            actions.edit(index, text);
          }}
        />
      ) : message.role === 'assistant' ? (
        <Suspense fallback={<p>{message.content}</p>}>
          <MarkdownText text={message.content} />
        </Suspense>
      ) : (
        <p className="break-words whitespace-pre-wrap">{message.content}</p>
      )}
      {message.readout && (
        <small className="readout" data-testid="answer-readout">
          {message.readout}
        </small>
      )}
      {!editing && (
        <div className="mt-1 flex flex-wrap gap-1" role="group" aria-label="Message actions">
          <CopyButton text={message.content} label="Copy message" testId="message-copy" />
          {message.role === 'user' && (
            <Button
              variant="ghost"
              size="icon"
              aria-label="Edit and resend"
              title="Edit and resend"
              data-testid="message-edit"
              disabled={actions.busy}
              onClick={() => actions.setEditing(index)}
            >
              <PencilIcon />
            </Button>
          )}
          <Button
            variant="ghost"
            size="icon"
            aria-label="Delete message"
            title="Delete message"
            data-testid="message-delete"
            disabled={actions.busy}
            onClick={() => actions.remove(index)}
          >
            <Trash2Icon />
          </Button>
        </div>
      )}
    </li>
  );
}

export function MessageList({ messages, actions }: { messages: ChatItem[]; actions: MessageActions }) {
  useEffect(() => void loadMarkdown(), []);
  return (
    <ol className="messages min-w-0" aria-live="polite">
      {messages.map((message, i) => (
        <Message key={i} message={message} index={i} actions={actions} />
      ))}
    </ol>
  );
}
