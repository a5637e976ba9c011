// Offline from the very first visit on WASM (`--disable-gpu`, so the engine falls back to WASM): every case of the
// flow in tests/support/offline-flow.ts. Its WebGPU twin, tests/e2e/offline-webgpu.test.ts, runs beside it, with
// the cases that depend on the backend.
import { describeOfflineFromFirstVisit } from '../support/offline-flow.ts';

describeOfflineFromFirstVisit('wasm', 'every');
