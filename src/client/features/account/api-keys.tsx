// The Account screen's API keys: make one (shown once, to copy), list them, revoke one. Keys are for the
// OpenAI-compatible API at /v1 (README, "OpenAI-compatible API").
import { CheckIcon, CopyIcon } from 'lucide-react';
import { useState } from 'react';
import { API_KEY_LIMITS } from '../../../shared/schemas/api-key.ts';
import { Button } from '../../components/ui/button.tsx';
import { Card } from '../../components/ui/card.tsx';
import { Field, Input } from '../../components/ui/input.tsx';
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
    <Card asChild>
      <section aria-labelledby="api-keys-title">
        <h2 id="api-keys-title" className="m-0 text-lg font-semibold">
          API keys
        </h2>
        <p className="m-0 text-sm text-muted">
          For tools that speak OpenAI&apos;s API: point them at <code>{`${location.origin}/v1`}</code> with a key. At
          most {API_KEY_LIMITS.activePerAccount} keys; each spends this account&apos;s chat budgets.
        </p>
        <form
          className="flex flex-wrap items-end gap-2"
          onSubmit={(event) => {
            event.preventDefault();
            setCopied(false);
            create.mutate({ name }, { onSuccess: () => setName('') });
          }}
        >
          <Field className="min-w-0 grow">
            Key name
            <Input
              data-testid="api-key-name"
              value={name}
              maxLength={API_KEY_LIMITS.nameChars}
              placeholder="e.g. laptop editor"
              onChange={(e) => setName(e.target.value)}
              required
            />
          </Field>
          <Button type="submit" data-testid="api-key-create" disabled={create.isPending}>
            Create key
          </Button>
        </form>
        {secret && (
          <div role="status" className="flex flex-col gap-2 rounded-lg border border-primary p-3">
            <p className="m-0 text-sm">Copy this key now: it is shown only once.</p>
            <code data-testid="api-key-secret" className="[overflow-wrap:anywhere] select-all">
              {secret}
            </code>
            <Button
              size="sm"
              className="self-start"
              onClick={() => {
                void navigator.clipboard.writeText(secret).then(() => setCopied(true));
              }}
            >
              {copied ? <CheckIcon /> : <CopyIcon />}
              {copied ? 'Copied' : 'Copy'}
            </Button>
          </div>
        )}
        {keys.data && keys.data.length > 0 && (
          <ul className="m-0 flex list-none flex-col gap-2 p-0">
            {keys.data.map((key) => (
              <li
                key={key.id}
                data-testid="api-key-row"
                className="flex flex-wrap items-center gap-x-2 gap-y-1 border-t border-border pt-2 text-sm"
              >
                <strong>{key.name}</strong> <code>{key.prefix}…</code>
                <span className="text-muted">
                  created {when(key.createdAt)}, last used {when(key.lastUsedAt)}
                  {key.revokedAt !== null && `, revoked ${when(key.revokedAt)}`}
                </span>
                {key.revokedAt === null && (
                  <Button
                    variant="destructive"
                    size="sm"
                    className="ml-auto"
                    data-testid="api-key-revoke"
                    disabled={revoke.isPending}
                    onClick={() => revoke.mutate({ id: key.id })}
                  >
                    Revoke
                  </Button>
                )}
              </li>
            ))}
          </ul>
        )}
        {error && (
          <p className="m-0 text-destructive" role="alert">
            {message(error)}
          </p>
        )}
      </section>
    </Card>
  );
}
