// Rooms in headless Chromium: two guests in the global room see each other connected over WebRTC with a
// round-trip time; a third browser, signed up and in a room of its own, sees neither and is not seen; a guest who
// signs up while in the room comes back into it on the new session; when one closes its page, the other shows
// it gone; a page joins over a WebSocket and asks for the room's stats only once its links are open.
import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { useAppServer } from '../support/app-server.ts';

const app = useAppServer({ name: 'rooms' });

const guest = (name: string) => app.guest(name);

const peerRow = (page: Page, name: string) => page.locator(`[data-testid="room-peer"][data-peer-name="${name}"]`);

describe('rooms in the browser', () => {
  it('connects two guests in the global room with an RTT, keeps a third room apart, and shows a peer leave', async () => {
    const ada = await guest('Ada');
    const bob = await guest('Bob');
    // At the same moment: each must hear of the other even when their joins interleave.
    await Promise.all([ada.goto(`${app.url}/rooms/global`), bob.goto(`${app.url}/rooms/global`)]);
    for (const [page, other] of [
      [ada, 'Bob'],
      [bob, 'Ada'],
    ] as const) {
      await expect
        .poll(() => peerRow(page, other).getByTestId('peer-state').getAttribute('data-state'), { timeout: 30_000 })
        .toBe('open');
      await expect
        .poll(() => peerRow(page, other).getByTestId('peer-rtt').textContent(), { timeout: 15_000 })
        .toMatch(/^\d+\.\d ms$/);
    }

    // A third browser signs up on the Account screen, creates its own room on the Rooms screen and is taken there.
    const cy = await app.newPage();
    await cy.goto(`${app.url}/account`);
    await cy.getByTestId('account-username').fill('cyrus');
    await cy.getByTestId('account-password').fill('correct horse battery');
    await cy.getByTestId('account-submit').click();
    await expect
      .poll(() => cy.getByTestId('account-user').textContent(), { timeout: 15_000 })
      .toMatch(/Signed in as cyrus/);
    await cy.getByRole('link', { name: 'Rooms' }).click();
    // The list comes a page at a time, the global room first.
    await expect.poll(() => cy.getByTestId('room-link').first().textContent(), { timeout: 15_000 }).toBe('Global');
    await cy.getByTestId('room-name').fill('Elsewhere');
    await cy.getByTestId('room-create').click();
    await expect
      .poll(() => new URL(cy.url()).pathname, { timeout: 15_000 })
      .toMatch(/^\/rooms\/elsewhere-[0-9a-f]{8}$/);
    await expect.poll(() => cy.getByTestId('room-empty').count(), { timeout: 15_000 }).toBe(1);
    expect(await cy.getByTestId('room-peer').count()).toBe(0);
    expect(await ada.getByTestId('room-peer').count()).toBe(1);

    // Bob signs up on the Account screen while in the room: the server ends his guest session's socket, and the
    // room comes back on the new one (a new peer id, connected again).
    const guestPeerId = await peerRow(ada, 'Bob').getAttribute('data-peer-id');
    await bob.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Account' }).click();
    await bob.getByTestId('account-username').fill('bob-signed-up');
    await bob.getByTestId('account-password').fill('correct horse battery');
    await bob.getByTestId('account-submit').click();
    await expect
      .poll(() => bob.getByTestId('account-user').textContent(), { timeout: 15_000 })
      .toMatch(/Signed in as bob-signed-up/);
    // Read without waiting: the row is gone for a moment between the two sessions.
    const bobRows = () =>
      peerRow(ada, 'Bob').evaluateAll((rows) =>
        rows.map((row) => [
          row.getAttribute('data-peer-id'),
          row.querySelector('[data-testid="peer-state"]')?.getAttribute('data-state'),
        ]),
      );
    await expect.poll(bobRows, { timeout: 30_000 }).toEqual([[expect.not.stringMatching(guestPeerId ?? ''), 'open']]);

    await bob.context().close();
    await expect.poll(() => peerRow(ada, 'Bob').count(), { timeout: 15_000 }).toBe(0);
    expect(await ada.getByTestId('room-empty').count()).toBe(1);
  }, 120_000);

  it('joins over a WebSocket, asks for the stats once its links are open, and for no catalogue', async () => {
    // Eight pages joining at once had these requests and the join's polling compete with the signals the server
    // relays (bench/README.md, "Eight pages joining at once").
    const eve = await guest('Eve');
    await eve.goto(`${app.url}/rooms/global`);
    await expect.poll(() => eve.getByTestId('room-self').textContent(), { timeout: 15_000 }).toMatch(/^You are /);

    const fay = await guest('Fay');
    const asked: string[] = [];
    fay.on('request', (request) => {
      const url = new URL(request.url());
      if (url.pathname.startsWith('/socket.io/')) asked.push(`socket.io ${url.searchParams.get('transport')}`);
      if (url.pathname.startsWith('/api/trpc/')) asked.push(url.pathname.slice('/api/trpc/'.length));
    });
    // What Fay's page showed of Eve's link when it asked for the room's stats.
    const linkWhenStatsAsked: (string | null)[] = [];
    await fay.route(/\/api\/trpc\/[^?]*jobs\.roomStats/, async (route) => {
      linkWhenStatsAsked.push(await peerRow(fay, 'Eve').getByTestId('peer-state').getAttribute('data-state'));
      await route.continue();
    });
    await fay.goto(`${app.url}/rooms/global`);
    await expect
      .poll(() => peerRow(fay, 'Eve').getByTestId('peer-state').getAttribute('data-state'), { timeout: 30_000 })
      .toBe('open');
    await expect.poll(() => fay.getByTestId('room-stats').count(), { timeout: 15_000 }).toBe(1);
    expect(linkWhenStatsAsked[0]).toBe('open');
    expect(asked.filter((name) => name.includes('manifest.list'))).toEqual([]);
    expect(asked.filter((name) => name === 'socket.io polling')).toEqual([]);
  }, 60_000);
});
