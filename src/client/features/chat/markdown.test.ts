// Answers from peers and providers render without making requests: no image loads from a server, links open apart.
import { createElement } from 'react';
import { renderToStaticMarkup } from 'react-dom/server';
import { describe, expect, it } from 'vitest';
import MarkdownText from './markdown.tsx';

const render = (text: string) => renderToStaticMarkup(createElement(MarkdownText, { text }));
const PIXEL =
  'data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==';

describe('markdown from peers and providers', () => {
  it('renders an image with an http URL as a link showing the URL, not as an image', () => {
    const html = render('Look: ![tracker](https://evil.example/pixel.png?who=me)');
    expect(html).not.toContain('<img');
    expect(html).toContain(
      '<a href="https://evil.example/pixel.png?who=me" rel="noopener noreferrer nofollow" target="_blank">tracker (https://evil.example/pixel.png?who=me)</a>',
    );
  });

  it('turns reference-style, protocol-relative and linked images into links too', () => {
    const html = render(
      '![a][ref] and ![b](//evil.example/b.png) and [![c](http://evil.example/c.png)](https://example.org)\n\n[ref]: http://evil.example/a.png',
    );
    expect(html).not.toContain('<img');
    expect(html).toContain('href="http://evil.example/a.png"');
    expect(html).toContain('href="//evil.example/b.png"');
  });

  it('shows data: and blob: images, which are already on this device', () => {
    expect(render(`![dot](${PIXEL})`)).toContain(`<img src="${PIXEL}" alt="dot"/>`);
    expect(render('![local](blob:https://mesh.example.org/0b1c)')).toContain(
      '<img src="blob:https://mesh.example.org/0b1c" alt="local"/>',
    );
  });

  it('never makes a javascript: URL clickable, as an image or a link', () => {
    const html = render(
      '![x](javascript:alert(1)) [y](javascript:alert(2)) ![z](data:text/html,<script>alert(3)</script>)',
    );
    expect(html).not.toContain('<img');
    expect(html).not.toMatch(/href="(javascript|data):/);
  });

  it('gives every link rel="noopener noreferrer nofollow" and target="_blank", autolinks included', () => {
    const html = render('[docs](https://example.org/docs) and https://example.org/auto');
    expect(html).toContain(
      '<a href="https://example.org/docs" rel="noopener noreferrer nofollow" target="_blank">docs</a>',
    );
    expect(html).toContain(
      '<a href="https://example.org/auto" rel="noopener noreferrer nofollow" target="_blank">https://example.org/auto</a>',
    );
  });

  it('renders raw HTML as text, never as markup', () => {
    const html = render('<img src="https://evil.example/raw.png"> <iframe src="https://evil.example"></iframe>');
    expect(html).not.toContain('<img');
    expect(html).not.toContain('<iframe');
  });
});
