// Markdown for answers (GitHub flavour, code blocks). Loaded lazily: it is a third of the chat's JavaScript.
// react-markdown renders no raw HTML, so a model's output cannot inject markup.
import Markdown from 'react-markdown';
import remarkGfm from 'remark-gfm';

export default function MarkdownText({ text }: { text: string }) {
  return <Markdown remarkPlugins={[remarkGfm]}>{text}</Markdown>;
}
