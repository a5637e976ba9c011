// The message box and its buttons, kept at the bottom within a thumb's reach. Keys: Enter sends, Shift+Enter makes
// a new line, Esc stops the answer, Up in an empty box edits the last question.
import { RefreshCwIcon, SendIcon, SquareIcon } from 'lucide-react';
import { Button } from '../../components/ui/button.tsx';

export function Composer({
  input,
  setInput,
  canSend,
  busy,
  canRegenerate,
  onSend,
  onStop,
  onRegenerate,
  onEditLast,
}: {
  input: string;
  setInput(text: string): void;
  canSend: boolean;
  busy: boolean;
  canRegenerate: boolean;
  onSend(): void;
  onStop(): void;
  onRegenerate(): void;
  onEditLast(): void;
}) {
  return (
    <form
      className="composer sticky bottom-0 z-10 flex flex-wrap items-end gap-2 bg-background py-2"
      onSubmit={(event) => {
        event.preventDefault();
        onSend();
      }}
    >
      <label className="sr-only" htmlFor="chat-input">
        Message
      </label>
      <textarea
        id="chat-input"
        data-testid="chat-input"
        className="min-w-0 grow basis-full sm:basis-0"
        rows={2}
        value={input}
        placeholder={canSend ? 'Write a message (Enter sends, Shift+Enter for a new line)' : 'Load a model first'}
        onChange={(event) => setInput(event.target.value)}
        onKeyDown={(event) => {
          if (event.key === 'Enter' && !event.shiftKey) {
            event.preventDefault();
            onSend();
          } else if (event.key === 'Escape' && busy) {
            event.preventDefault();
            onStop();
          } else if (event.key === 'ArrowUp' && !input) {
            event.preventDefault();
            onEditLast();
          }
        }}
      />
      <div className="flex grow justify-end gap-2 sm:grow-0">
        <Button type="submit" variant="default" data-testid="chat-send" disabled={!canSend || busy || !input.trim()}>
          <SendIcon />
          Send
        </Button>
        <Button data-testid="chat-stop" disabled={!busy} onClick={onStop}>
          <SquareIcon />
          Stop
        </Button>
        <Button data-testid="chat-regenerate" disabled={busy || !canRegenerate} onClick={onRegenerate}>
          <RefreshCwIcon />
          Regenerate
        </Button>
      </div>
    </form>
  );
}
