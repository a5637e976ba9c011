import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { App } from './app.tsx';
import { restoreLastModel } from './features/models/restore.ts';
import { registerServiceWorker } from './lib/pwa.ts';
import { api, apiClient } from './lib/trpc.ts';
import './index.css';

const root = document.getElementById('root');
if (!root) throw new Error('index.html has no #root element');
const queryClient = new QueryClient({
  defaultOptions: { queries: { staleTime: 30_000, refetchOnWindowFocus: false } },
});
registerServiceWorker();
// The model loaded last time comes back by itself, online or offline, whichever screen opens first.
void restoreLastModel();
createRoot(root).render(
  <StrictMode>
    <api.Provider client={apiClient} queryClient={queryClient}>
      <QueryClientProvider client={queryClient}>
        <App />
      </QueryClientProvider>
    </api.Provider>
  </StrictMode>,
);
