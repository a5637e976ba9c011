// Placeholder shell until the PWA issue lands: shows that the client and the API share one origin.
import { useEffect, useState } from 'react';
import { LocalChat } from './features/chat/local-chat.tsx';

interface Health {
  status: string;
  db: string;
  database: string;
  version: string;
}

export function App() {
  const [health, setHealth] = useState<Health | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    const controller = new AbortController();
    fetch('/api/health', { signal: controller.signal })
      .then(async (response) => setHealth((await response.json()) as Health))
      .catch((cause: unknown) => {
        if (!controller.signal.aborted) setError(cause instanceof Error ? cause.message : String(cause));
      });
    return () => controller.abort();
  }, []);

  return (
    <main className="shell">
      <h1>Mesh NanoLLM</h1>
      <p>Chat with small language models in your browser, alone or together.</p>
      <p data-testid="server-status" role="status">
        {error
          ? `Server unreachable: ${error}`
          : health
            ? `Server ${health.status} · database ${health.db} (${health.database}) · v${health.version}`
            : 'Checking the server…'}
      </p>
      <LocalChat />
    </main>
  );
}
