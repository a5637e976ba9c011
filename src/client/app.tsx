// The app shell: navigation, online/offline state, install and update prompts, theme; screens by route.
import { useEffect, useLayoutEffect, useState } from 'react';
import { Link, Route, Switch, useLocation } from 'wouter';
import { APP_BUILD } from './env.ts';
import { AccountPage } from './features/account/account-page.tsx';
import { ChatPage } from './features/chat/chat-page.tsx';
import { rememberAccount } from './features/chat/conversation-store.ts';
import { ModelsPage } from './features/models/models-page.tsx';
import { RoomPage, RoomsPage } from './features/rooms/rooms-page.tsx';
import { useInstallPrompt, useOnline, useUpdateReady } from './lib/pwa.ts';
import { api } from './lib/trpc.ts';

type Theme = 'dark' | 'light';

function useTheme(): [Theme, () => void] {
  const [theme, setTheme] = useState<Theme>(() => (localStorage.getItem('theme') === 'light' ? 'light' : 'dark'));
  useEffect(() => {
    document.documentElement.dataset.theme = theme;
    localStorage.setItem('theme', theme);
  }, [theme]);
  return [theme, () => setTheme((t) => (t === 'dark' ? 'light' : 'dark'))];
}

/** Remembers who is signed in whenever the server says, so that offline their conversations wait on this device for them. */
function useRememberAccount(online: boolean): void {
  const me = api.auth.me.useQuery(undefined, { enabled: online, retry: false });
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
  const [theme, toggleTheme] = useTheme();
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
        <button
          type="button"
          aria-label={`Switch to ${theme === 'dark' ? 'light' : 'dark'} theme`}
          onClick={toggleTheme}
        >
          {theme === 'dark' ? 'Light' : 'Dark'}
        </button>
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
      </main>
      <footer className="shell muted small" data-testid="app-build">
        Mesh NanoLLM · build {APP_BUILD}
      </footer>
    </>
  );
}
