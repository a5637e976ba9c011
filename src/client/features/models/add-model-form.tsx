// The Models screen's "Add a model by its repo id" field: a Hub repo id or huggingface.co URL goes to models.add;
// the server checks it on the Hub (README "Add a model by its repo id") and the answer shows the size of each
// dtype, or which check refused it and why.
import { useState } from 'react';
import { Button } from '../../components/ui/button.tsx';
import { formatBytes } from '../../lib/device-cache.ts';
import { api } from '../../lib/trpc.ts';
import { useRefreshCatalogue } from './catalogue.ts';

/** How a refused check reads to a person. */
const CHECK_LABEL: Record<string, string> = {
  input: 'Repo id',
  pattern: 'Allowed repos',
  limit: 'Models per account',
  duplicate: 'Already listed',
  repo: 'Repo exists',
  access: 'Access',
  rate: 'Hub rate limit',
  architecture: 'Architecture',
  tokenizer: 'Tokenizer',
  onnx: 'ONNX weights',
  license: 'License',
  hub: 'Hub',
};

export function AddModelForm() {
  const refresh = useRefreshCatalogue();
  const add = api.models.add.useMutation({ onSuccess: refresh });
  const [repo, setRepo] = useState('');
  const check = add.error?.data?.check;
  const added = add.data;

  return (
    <form
      className="stack"
      aria-labelledby="model-add-title"
      onSubmit={(event) => {
        event.preventDefault();
        add.mutate({ repo: repo.trim() }, { onSuccess: () => setRepo('') });
      }}
    >
      <h2 id="model-add-title">Add a model by its repo id</h2>
      <p className="muted">
        A Hub repo with ONNX weights for transformers.js, such as <code>onnx-community/Qwen2.5-0.5B-Instruct</code>, or
        its huggingface.co URL. The server checks it on the Hub, then it is in your catalogue.
      </p>
      <div className="actions">
        <input
          data-testid="model-add-input"
          aria-label="Hub repo id or URL"
          value={repo}
          maxLength={300}
          placeholder="owner/name"
          onChange={(e) => setRepo(e.target.value)}
          required
        />
        <Button type="submit" variant="default" data-testid="model-add-submit" disabled={add.isPending || !repo.trim()}>
          {add.isPending ? 'Checking…' : 'Add'}
        </Button>
      </div>
      {add.error && (
        <p className="error" role="alert" data-testid="model-add-error" data-check={check ?? ''}>
          {check ? `${CHECK_LABEL[check] ?? check}: ` : ''}
          {add.error.message}
        </p>
      )}
      {added && (
        <p role="status" data-testid="model-add-result">
          Added {added.entry.name} ({added.entry.license}):{' '}
          {added.sizes.map((s) => `${s.dtype} ${formatBytes(s.bytes)}`).join(' · ')}. This device will fetch only its
          own dtype (WebGPU {added.entry.dtype.webgpu}, WASM {added.entry.dtype.wasm}).
        </p>
      )}
    </form>
  );
}
