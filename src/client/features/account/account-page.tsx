// The Account screen: sign up (a guest keeps their identity), log in, log out, change password, API keys.
import { useState } from 'react';
import { Button } from '../../components/ui/button.tsx';
import { Card } from '../../components/ui/card.tsx';
import { Field, Input } from '../../components/ui/input.tsx';
import { forgetKeptState } from '../../lib/kept-state.ts';
import { api } from '../../lib/trpc.ts';
import { ApiKeysSection } from './api-keys.tsx';

function message(cause: unknown): string {
  return cause instanceof Error ? cause.message : String(cause);
}

function ErrorLine({ error }: { error: unknown }) {
  if (!error) return null;
  return (
    <p className="m-0 text-destructive" role="alert">
      {message(error)}
    </p>
  );
}

export function AccountPage() {
  const utils = api.useUtils();
  const me = api.auth.me.useQuery();
  // Whoever is signed in now starts from a new chat: the one kept while this screen is open was the last person's.
  const refresh = () => {
    forgetKeptState();
    return utils.invalidate();
  };
  const signup = api.auth.signup.useMutation({ onSuccess: refresh });
  const login = api.auth.login.useMutation({ onSuccess: refresh });
  const logout = api.auth.logout.useMutation({ onSuccess: refresh });
  const change = api.auth.changePassword.useMutation();
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [current, setCurrent] = useState('');
  const [next, setNext] = useState('');
  const [mode, setMode] = useState<'signup' | 'login'>('signup');
  const error = signup.error ?? login.error ?? logout.error ?? change.error;

  if (me.data?.kind === 'ACCOUNT') {
    return (
      <section aria-labelledby="account-title" className="flex max-w-xl min-w-0 flex-col gap-4">
        <h1 id="account-title" className="m-0 text-2xl font-semibold">
          Account
        </h1>
        <div className="flex flex-wrap items-center justify-between gap-3">
          <p className="m-0" data-testid="account-user">
            Signed in as <strong>{me.data.username}</strong> ({me.data.displayName})
          </p>
          <Button data-testid="account-logout" onClick={() => logout.mutate()}>
            Log out
          </Button>
        </div>
        <Card asChild>
          <form
            aria-labelledby="password-title"
            onSubmit={(event) => {
              event.preventDefault();
              change.mutate({ currentPassword: current, newPassword: next });
            }}
          >
            <h2 id="password-title" className="m-0 text-lg font-semibold">
              Change password
            </h2>
            <Field>
              Current password
              <Input
                type="password"
                autoComplete="current-password"
                value={current}
                onChange={(e) => setCurrent(e.target.value)}
                required
              />
            </Field>
            <Field>
              New password
              <Input
                type="password"
                autoComplete="new-password"
                minLength={8}
                value={next}
                onChange={(e) => setNext(e.target.value)}
                required
              />
            </Field>
            <Button type="submit" className="self-start">
              Change password
            </Button>
            {change.data && (
              <p className="m-0" role="status">
                Password changed; {change.data.revokedSessions} other sessions signed out.
              </p>
            )}
          </form>
        </Card>
        <ApiKeysSection />
        <ErrorLine error={error} />
      </section>
    );
  }

  return (
    <section aria-labelledby="account-title" className="flex max-w-md min-w-0 flex-col gap-4">
      <h1 id="account-title" className="m-0 text-2xl font-semibold">
        {mode === 'signup' ? 'Sign up' : 'Log in'}
      </h1>
      <p className="m-0 text-muted">
        {mode === 'signup'
          ? 'An account keeps your conversations on the server and lets you create rooms. As a guest, you keep your name and history.'
          : 'Welcome back.'}
      </p>
      <Card asChild>
        <form
          aria-labelledby="account-title"
          onSubmit={(event) => {
            event.preventDefault();
            if (mode === 'signup') signup.mutate({ username, password });
            else login.mutate({ username, password });
          }}
        >
          <Field>
            Username
            <Input
              data-testid="account-username"
              autoComplete="username"
              value={username}
              onChange={(e) => setUsername(e.target.value)}
              required
            />
          </Field>
          <Field>
            Password
            <Input
              data-testid="account-password"
              type="password"
              autoComplete={mode === 'signup' ? 'new-password' : 'current-password'}
              minLength={8}
              value={password}
              onChange={(e) => setPassword(e.target.value)}
              required
            />
          </Field>
          <Button type="submit" variant="default" className="self-start" data-testid="account-submit">
            {mode === 'signup' ? 'Sign up' : 'Log in'}
          </Button>
        </form>
      </Card>
      <Button variant="link" className="self-start" onClick={() => setMode(mode === 'signup' ? 'login' : 'signup')}>
        {mode === 'signup' ? 'I have an account: log in' : 'New here? Sign up'}
      </Button>
      <ErrorLine error={error} />
    </section>
  );
}
