// Offline from the very first visit on SwiftShader's WebGPU (tests/support/offline-flow.ts), each step allowed three
// times as long (a load there compiles its shaders on the CPU). Only the cases that depend on the backend run here:
// the first visit (the WebGPU runtime is fetched and kept), the reopen with the server stopped and the network off
// (the kept runtime and model load offline and answer), and removing the last model (which frees that runtime). The
// others (a second tab, an ordinary reload, the sync when the network returns, a hard reload, the update prompt)
// are the same whatever the backend and run on WASM only: tests/e2e/offline-wasm.test.ts, which runs beside this.
import { describeOfflineFromFirstVisit } from '../support/offline-flow.ts';

describeOfflineFromFirstVisit('webgpu', 'backend');
