// Markdown for answers (GitHub flavour, code blocks). Loaded lazily: it is a third of the chat's JavaScript.
// Answers come from peers and providers, so nothing in them may make a request on its own (docs/SECURITY.md):
// react-markdown renders no raw HTML, images show only from data: and blob: URLs (any other becomes a link
// showing its URL), and links open in a new tab without an opener or a referrer.
import Markdown, { type Components, type UrlTransform, defaultUrlTransform } from 'react-markdown';
import remarkGfm from 'remark-gfm';
import { CopyButton } from './copy-button.tsx';

const LINK_REL = 'noopener noreferrer nofollow';

/** An image already on this device: showing it asks no server anything (nor tells one that the answer was read). */
export function isInlineImage(url: string): boolean {
  return /^data:image\//i.test(url) || /^blob:/i.test(url);
}

// Image sources reach the img component as written, so it can tell inline images from the rest; every other URL
// goes through react-markdown's own filter (no javascript: and the like).
const urlTransform: UrlTransform = (url, key, node) =>
  key === 'src' && node.tagName === 'img' ? url : defaultUrlTransform(url);

const components: Components = {
  // A code block with its own copy button (the text as written, without the fences).
  pre: ({ node: _node, children, ...props }) => {
    let code = '';
    const collect = (element: unknown) => {
      const inner = (element as { props?: { children?: unknown } } | null)?.props?.children;
      if (typeof inner === 'string') code += inner;
      else if (Array.isArray(inner))
        inner.forEach((part) => (typeof part === 'string' ? (code += part) : collect(part)));
    };
    collect(children);
    return (
      <div className="relative">
        <pre {...props}>{children}</pre>
        <CopyButton
          text={code.replace(/\n$/, '')}
          testId="code-copy"
          label="Copy code"
          className="absolute top-1 right-1"
        />
      </div>
    );
  },
  a: ({ node: _node, ...props }) => <a {...props} rel={LINK_REL} target="_blank" />,
  img: ({ src, alt, title }) => {
    const url = typeof src === 'string' ? src : '';
    if (isInlineImage(url)) return <img src={url} alt={alt ?? ''} title={title} />;
    const label = alt ? `${alt} (${url})` : url;
    const href = defaultUrlTransform(url);
    return href ? (
      <a href={href} rel={LINK_REL} target="_blank" title={title}>
        {label}
      </a>
    ) : (
      <span>{label}</span>
    );
  },
};

export default function MarkdownText({ text }: { text: string }) {
  return (
    <Markdown remarkPlugins={[remarkGfm]} urlTransform={urlTransform} components={components}>
      {text}
    </Markdown>
  );
}
