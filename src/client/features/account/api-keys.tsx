// The Account screen's API keys: make one (shown once, to copy), list them, revoke one. Keys are for the
// OpenAI-compatible API at /v1 (README, "OpenAI-compatible API").
import { useState } from 'react';
import { API_KEY_LIMITS } from '../../../shared/schemas/api-key.ts';
import { api } from '../../lib/trpc.ts';

function message(cause: unknown): string {
  return cause instanceof Error ? cause.message : String(cause);
}

function when(date: Date | string | null): string {
  return date === null ? 'never' : new Date(date).toLocaleString();
}

export function ApiKeysSection() {
  const utils = api.useUtils();
  const keys = api.apiKey.list.useQuery();
  const refresh = () => utils.apiKey.list.invalidate();
  const create = api.apiKey.create.useMutation({ onSuccess: refresh });
  const revoke = api.apiKey.revoke.useMutation({ onSuccess: refresh });
  const [name, setName] = useState('');
  const [copied, setCopied] = useState(false);
  const error = create.error ?? revoke.error ?? keys.error;
  const secret = create.data?.key;

  return (
    <section className="stack" aria-labelledby="api-keys-title">
      <h2 id="api-keys-title">API keys</h2>
      <p className="muted">
        For tools that speak OpenAI&apos;s API: point them at <code>{`${location.origin}/v1`}</code> with a key. At most{' '}
        {API_KEY_LIMITS.activePerAccount} keys; each spends this account&apos;s chat budgets.
      </p>
      <form
        className="stack"
        onSubmit={(event) => {
          event.preventDefault();
          setCopied(false);
          create.mutate({ name }, { onSuccess: () => setName('') });
        }}
      >
        <label>
          Key name{' '}
          <input
            data-testid="api-key-name"
            value={name}
            maxLength={API_KEY_LIMITS.nameChars}
            placeholder="e.g. laptop editor"
            onChange={(e) => setName(e.target.value)}
            required
          />
        </label>
        <button type="submit" data-testid="api-key-create" disabled={create.isPending}>
          Create key
        </button>
      </form>
      {secret && (
        <div role="status" className="stack">
          <p>Copy this key now: it is shown only once.</p>
          <code data-testid="api-key-secret" className="secret">
            {secret}
          </code>
          <button
            type="button"
            onClick={() => {
              void navigator.clipboard.writeText(secret).then(() => setCopied(true));
            }}
          >
            {copied ? 'Copied' : 'Copy'}
          </button>
        </div>
      )}
      {keys.data && keys.data.length > 0 && (
        <ul className="stack">
          {keys.data.map((key) => (
            <li key={key.id} data-testid="api-key-row">
              <strong>{key.name}</strong> <code>{key.prefix}…</code>{' '}
              <span className="muted">
                created {when(key.createdAt)}, last used {when(key.lastUsedAt)}
                {key.revokedAt !== null && `, revoked ${when(key.revokedAt)}`}
              </span>{' '}
              {key.revokedAt === null && (
                <button
                  type="button"
                  data-testid="api-key-revoke"
                  disabled={revoke.isPending}
                  onClick={() => revoke.mutate({ id: key.id })}
                >
                  Revoke
                </button>
              )}
            </li>
          ))}
        </ul>
      )}
      {error && (
        <p className="error" role="alert">
          {message(error)}
        </p>
      )}
    </section>
  );
}
