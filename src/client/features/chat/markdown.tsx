// Markdown for answers (GitHub flavour, code blocks). Loaded lazily: it is a third of the chat's JavaScript.
// Answers come from peers and providers, so nothing in them may make a request on its own (docs/SECURITY.md):
// react-markdown renders no raw HTML, images show only from data: and blob: URLs (any other becomes a link
// showing its URL), and links open in a new tab without an opener or a referrer.
import Markdown, { type Components, type UrlTransform, defaultUrlTransform } from 'react-markdown';
import remarkGfm from 'remark-gfm';

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
