// Server-sent events as the HTML spec reads them, reduced to what OpenAI-compatible APIs send: `data:`
// lines joined per event, `:` comments (OpenRouter's keep-alives) skipped, other fields ignored.
import { ProviderError } from './provider.ts';

/** One event's data past this means a broken or hostile upstream, not a chat chunk (they are ~200 bytes). */
const MAX_EVENT_CHARS = 1024 * 1024;

export class SseParser {
  private pending = '';
  private data: string[] = [];
  private dataChars = 0;

  /** Feeds decoded text (any split, even inside a line or a CRLF); returns the data of each completed event. */
  push(text: string): string[] {
    this.pending += text;
    const events: string[] = [];
    let start = 0;
    for (let i = 0; i < this.pending.length; i++) {
      const char = this.pending[i];
      if (char !== '\n' && char !== '\r') continue;
      // A CR at the very end may be the first half of a CRLF whose LF is in the next read.
      if (char === '\r' && i === this.pending.length - 1) break;
      this.line(this.pending.slice(start, i), events);
      if (char === '\r' && this.pending[i + 1] === '\n') i++;
      start = i + 1;
    }
    this.pending = this.pending.slice(start);
    if (this.pending.length + this.dataChars > MAX_EVENT_CHARS) {
      throw new ProviderError('BAD_UPSTREAM_RESPONSE', 'The provider sent an event larger than 1 MiB');
    }
    return events;
  }

  /** At the end of the stream: a trailing CR ends its line after all (an unfinished event is dropped, per spec). */
  end(): string[] {
    const events: string[] = [];
    if (this.pending.endsWith('\r')) this.line(this.pending.slice(0, -1), events);
    this.pending = '';
    return events;
  }

  private line(line: string, events: string[]): void {
    if (line === '') {
      if (this.data.length > 0) events.push(this.data.join('\n'));
      this.data = [];
      this.dataChars = 0;
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    if (field !== 'data') return;
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    this.data.push(value);
    this.dataChars += value.length;
  }
}
