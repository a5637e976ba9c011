// The Account screen: sign up (a guest keeps their identity), log in, log out, change password, API keys.
import { useState } from 'react';
import { api } from '../../lib/trpc.ts';
import { ApiKeysSection } from './api-keys.tsx';

function message(cause: unknown): string {
  return cause instanceof Error ? cause.message : String(cause);
}

export function AccountPage() {
  const utils = api.useUtils();
  const me = api.auth.me.useQuery();
  const refresh = () => utils.invalidate();
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
      <section aria-labelledby="account-title" className="narrow">
        <h1 id="account-title">Account</h1>
        <p data-testid="account-user">
          Signed in as <strong>{me.data.username}</strong> ({me.data.displayName})
        </p>
        <button type="button" data-testid="account-logout" onClick={() => logout.mutate()}>
          Log out
        </button>
        <form
          className="stack"
          onSubmit={(event) => {
            event.preventDefault();
            change.mutate({ currentPassword: current, newPassword: next });
          }}
        >
          <h2>Change password</h2>
          <label>
            Current password{' '}
            <input
              type="password"
              autoComplete="current-password"
              value={current}
              onChange={(e) => setCurrent(e.target.value)}
              required
            />
          </label>
          <label>
            New password{' '}
            <input
              type="password"
              autoComplete="new-password"
              minLength={8}
              value={next}
              onChange={(e) => setNext(e.target.value)}
              required
            />
          </label>
          <button type="submit">Change password</button>
          {change.data && (
            <p role="status">Password changed; {change.data.revokedSessions} other sessions signed out.</p>
          )}
        </form>
        <ApiKeysSection />
        {error && (
          <p className="error" role="alert">
            {message(error)}
          </p>
        )}
      </section>
    );
  }

  return (
    <section aria-labelledby="account-title" className="narrow">
      <h1 id="account-title">{mode === 'signup' ? 'Sign up' : 'Log in'}</h1>
      <p className="muted">
        {mode === 'signup'
          ? 'An account keeps your conversations on the server and lets you create rooms. As a guest, you keep your name and history.'
          : 'Welcome back.'}
      </p>
      <form
        className="stack"
        onSubmit={(event) => {
          event.preventDefault();
          if (mode === 'signup') signup.mutate({ username, password });
          else login.mutate({ username, password });
        }}
      >
        <label>
          Username{' '}
          <input
            data-testid="account-username"
            autoComplete="username"
            value={username}
            onChange={(e) => setUsername(e.target.value)}
            required
          />
        </label>
        <label>
          Password{' '}
          <input
            data-testid="account-password"
            type="password"
            autoComplete={mode === 'signup' ? 'new-password' : 'current-password'}
            minLength={8}
            value={password}
            onChange={(e) => setPassword(e.target.value)}
            required
          />
        </label>
        <button type="submit" className="primary" data-testid="account-submit">
          {mode === 'signup' ? 'Sign up' : 'Log in'}
        </button>
      </form>
      <button type="button" className="link" onClick={() => setMode(mode === 'signup' ? 'login' : 'signup')}>
        {mode === 'signup' ? 'I have an account: log in' : 'New here? Sign up'}
      </button>
      {error && (
        <p className="error" role="alert">
          {message(error)}
        </p>
      )}
    </section>
  );
}
