// The app shell: navigation, online/offline state, install and update prompts, theme, toasts; screens by route.
import { Suspense, lazy, useLayoutEffect } from 'react';
import { Link, Route, Switch, useLocation } from 'wouter';
import { APP_BUILD } from './env.ts';
import { ChatPage } from './features/chat/chat-page.tsx';
import { rememberAccount } from './features/chat/conversation-sync.ts';
import { MoveOffer } from './features/chat/move-offer.tsx';
import { useInstallPrompt, useOnline, useUpdateReady } from './lib/pwa.ts';
import { Button } from './components/ui/button.tsx';
import { useTheme } from './lib/theme.ts';
import { api, retryTransient } from './lib/trpc.ts';

// Menus and toasts (Radix, sonner) come in their own chunk after the first paint: the initial JS stays small
// (bench/pwa.ts, goal under 200 KB gzip).
const ThemeSwitch = lazy(() => import('./components/theme-switch.tsx').then((m) => ({ default: m.ThemeSwitch })));
const Toaster = lazy(() => import('./components/ui/toast.tsx').then((m) => ({ default: m.Toaster })));
// The screens other than Chat, each in its own chunk, loaded when first opened (the service worker precaches them all,
// so they open offline too).
const ModelsPage = lazy(() => import('./features/models/models-page.tsx').then((m) => ({ default: m.ModelsPage })));
const RoomsPage = lazy(() => import('./features/rooms/rooms-page.tsx').then((m) => ({ default: m.RoomsPage })));
const RoomPage = lazy(() => import('./features/rooms/room-page.tsx').then((m) => ({ default: m.RoomPage })));
const AccountPage = lazy(() => import('./features/account/account-page.tsx').then((m) => ({ default: m.AccountPage })));

/** Remembers who is signed in whenever the server says, so that offline their conversations wait on this device for them. */
function useRememberAccount(online: boolean): void {
  const me = api.auth.me.useQuery(undefined, { enabled: online, retry: retryTransient });
  // Layout effect: remembered in the same commit that shows who is signed in, so a tab closed right after knows.
  useLayoutEffect(() => {
    if (online && me.isSuccess) rememberAccount(me.data?.kind === 'ACCOUNT' ? me.data.id : null);
  }, [online, me.isSuccess, me.data]);
}

function NavLink({ href, children }: { href: string; children: string }) {
  const [location] = useLocation();
  return (
    <Link href={href} aria-current={location === href ? 'page' : undefined}>
      {children}
    </Link>
  );
}

export function App() {
  const online = useOnline();
  const install = useInstallPrompt();
  const update = useUpdateReady();
  const theme = useTheme();
  useRememberAccount(online);
  return (
    <>
      <header className="topbar">
        <strong className="brand">Mesh NanoLLM</strong>
        <nav aria-label="Main">
          <NavLink href="/">Chat</NavLink>
          <NavLink href="/models">Models</NavLink>
          <NavLink href="/rooms">Rooms</NavLink>
          <NavLink href="/account">Account</NavLink>
        </nav>
        <span
          className={online ? 'pill' : 'pill pill-warn'}
          data-testid="offline-indicator"
          data-online={online}
          role="status"
        >
          {online ? 'Online' : 'Offline'}
        </span>
        {install && (
          <button type="button" data-testid="install-app" onClick={() => void install()}>
            Install app
          </button>
        )}
        <Suspense fallback={<Button variant="ghost" size="icon" aria-label="Theme" disabled />}>
          <ThemeSwitch choice={theme.choice} onChoose={theme.choose} />
        </Suspense>
      </header>
      {update && (
        <div className="banner" role="alert" data-testid="update-prompt">
          A new version of Mesh NanoLLM is ready. Models on this device stay.
          <button type="button" className="primary" data-testid="update-reload" onClick={update}>
            Reload to update
          </button>
        </div>
      )}
      <main className="shell">
        {/* At sign-up or login: a guest's conversations on this device offered to move into the account. */}
        <MoveOffer />
        <Suspense fallback={<p className="muted">Opening…</p>}>
          <Switch>
            <Route path="/models" component={ModelsPage} />
            <Route path="/rooms" component={RoomsPage} />
            <Route path="/account" component={AccountPage} />
            <Route path="/rooms/:slug" component={RoomPage} />
            <Route path="/" component={ChatPage} />
            <Route>
              <p>
                Nothing here. <Link href="/">Back to the chat</Link>
              </p>
            </Route>
          </Switch>
        </Suspense>
      </main>
      <footer className="shell muted small" data-testid="app-build">
        Mesh NanoLLM · build {APP_BUILD}
      </footer>
      <Suspense>
        <Toaster theme={theme.resolved} />
      </Suspense>
    </>
  );
}
