import { describe, expect, it } from 'vitest';
import { createProviders } from '../providers/index.ts';
import { parseEnv } from '../env.ts';
import type { ManifestEntry } from '../../shared/schemas/models.ts';
import { OpenAIError } from './errors.ts';
import { listModels, routeModel } from './routing.ts';

const providers = createProviders(
  parseEnv({
    OPENAI_API_KEY: 'sk-test-0123456789',
    OPENAI_MODELS: 'gpt-4o-mini,gpt-4o',
    HF_TOKEN: 'hf_test0123456789',
    HF_MODELS: '*',
  }),
);
const manifest = [{ id: 'nano-shakespeare', name: 'Nano Shakespeare' } as ManifestEntry];
const route = (name: string) => routeModel(name, { providers, manifest });

function refused(name: string): OpenAIError {
  try {
    route(name);
  } catch (error) {
    expect(error).toBeInstanceOf(OpenAIError);
    return error as OpenAIError;
  }
  throw new Error(`${name} was routed`);
}

describe('routeModel', () => {
  it('sends stub to the stub provider and <provider>/<model> to that provider with the rest as its model name', () => {
    expect(route('stub')).toMatchObject({ kind: 'provider', provider: { id: 'stub' }, model: 'stub-echo' });
    expect(route('openai/gpt-4o')).toMatchObject({ kind: 'provider', provider: { id: 'openai' }, model: 'gpt-4o' });
    expect(route('huggingface/meta-llama/Llama-3.1-8B-Instruct:novita')).toMatchObject({
      kind: 'provider',
      provider: { id: 'huggingface' },
      model: 'meta-llama/Llama-3.1-8B-Instruct:novita',
    });
  });

  it('sends a catalogue id to the mesh', () => {
    expect(route('nano-shakespeare')).toMatchObject({ kind: 'mesh', entry: { id: 'nano-shakespeare' } });
  });

  it('refuses with 404 model_not_found: unknown names, unconfigured providers, models outside an allow-list, bad names', () => {
    for (const name of [
      'gpt-4o',
      'stub/other',
      'openrouter/openai/gpt-4o-mini',
      'openai/gpt-3.5-turbo',
      'openai/',
      'openai/../x y',
    ]) {
      expect(refused(name)).toMatchObject({ status: 404, code: 'model_not_found', options: { param: 'model' } });
    }
    expect(refused('openrouter/openai/gpt-4o-mini').message).toContain('OpenRouter is not configured on this server');
    expect(refused('openai/gpt-3.5-turbo').message).toContain('does not offer it');
  });
});

describe('listModels', () => {
  it('lists the stub, then each configured provider’s allowed models (its default when any model is allowed)', () => {
    expect(listModels({ providers }, 1).map((model) => [model.id, model.owned_by])).toEqual([
      ['stub', 'stub'],
      ['openai/gpt-4o-mini', 'openai'],
      ['openai/gpt-4o', 'openai'],
      ['huggingface/meta-llama/Llama-3.1-8B-Instruct', 'huggingface'],
    ]);
  });
});
