// Renders the PWA icons (192, 512, and a maskable 512 with a safe-zone margin) from public/favicon.svg with
// headless Chromium. Run after changing the logo: `npx tsx scripts/make-icons.ts`; the PNGs are committed.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { chromium } from 'playwright-core';

const root = path.resolve(import.meta.dirname, '..');
const svg = await readFile(path.join(root, 'public/favicon.svg'), 'utf8');
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu'],
});
const page = await browser.newPage();
const icons = [
  { file: 'pwa-192x192.png', size: 192, inset: 0 },
  { file: 'pwa-512x512.png', size: 512, inset: 0 },
  // Maskable: the platform may crop to a circle of 80% diameter, so the logo sits inside that on a full bleed.
  { file: 'maskable-512x512.png', size: 512, inset: 0.14 },
];
for (const { file, size, inset } of icons) {
  await page.setViewportSize({ width: size, height: size });
  const pad = Math.round(size * inset);
  await page.setContent(
    `<html><body style="margin:0;background:#0b0f17"><div style="padding:${pad}px;width:${size}px;height:${size}px;box-sizing:border-box">${svg.replace('<svg ', '<svg width="100%" height="100%" ')}</div></body></html>`,
  );
  await page.screenshot({ path: path.join(root, 'public', file), omitBackground: inset === 0 });
  console.log(`public/${file}`);
}
await browser.close();
