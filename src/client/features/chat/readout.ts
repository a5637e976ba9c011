// The readout under an answer, one formatter for every route: "on Ada · WASM · 41.0 tok/s · 18 ms RTT · TTFT 30 ms".
import { BACKEND_LABEL, type Backend } from '../../../shared/engine-protocol.ts';
import type { MeshOutcome } from '../../../shared/mesh/job-requester.ts';

export type Readout =
  | { route: 'device'; model: string; backend: Backend; ttftMs: number; tokensPerSecond: number; stopped: boolean }
  | { route: 'mesh'; outcome: MeshOutcome }
  /** A pipeline job: `stages` names each stage's peer ("across 2 peers: Ada (layers 0–2) → Bob (layers 2–4)"). */
  | {
      route: 'pipeline';
      model: string;
      stages: string;
      failovers: string[];
      ttftMs: number;
      tokensPerSecond: number;
      stopped: boolean;
    }
  /** Stopped before any peer took the job. */
  | { route: 'mesh-unanswered' }
  | { route: 'cloud'; label: string; model: string; ttftMs: number | null; tokensPerSecond: number | null }
  | { route: 'cloud-stopped'; label: string };

const backendLabel = (backend: string) => (backend in BACKEND_LABEL ? BACKEND_LABEL[backend as Backend] : backend);

export function formatReadout(readout: Readout): string {
  switch (readout.route) {
    case 'device':
      return `${readout.model} on this device · ${BACKEND_LABEL[readout.backend]} · TTFT ${Math.round(readout.ttftMs)} ms · ${readout.tokensPerSecond.toFixed(1)} tok/s${readout.stopped ? ' · stopped' : ''}`;
    case 'mesh': {
      const { outcome } = readout;
      const last = outcome.servedBy.at(-1);
      const parts = [
        `on ${last?.name ?? 'a peer'}`,
        backendLabel(outcome.backend),
        `${outcome.tokensPerSecond.toFixed(1)} tok/s`,
      ];
      if (last?.rttMs !== null && last?.rttMs !== undefined) parts.push(`${Math.round(last.rttMs)} ms RTT`);
      parts.push(`TTFT ${Math.round(outcome.ttftMs)} ms`);
      if (outcome.failovers)
        parts.push(
          `continued after ${outcome.failovers} peer${outcome.failovers === 1 ? '' : 's'} left (${outcome.servedBy.map((p) => p.name).join(' → ')})`,
        );
      if (outcome.reason === 'interrupted') parts.push('stopped');
      return parts.join(' · ');
    }
    case 'pipeline':
      return [
        `${readout.model} ${readout.stages}`,
        `${readout.tokensPerSecond.toFixed(1)} tok/s`,
        `TTFT ${Math.round(readout.ttftMs)} ms`,
        ...readout.failovers,
        ...(readout.stopped ? ['stopped'] : []),
      ].join(' · ');
    case 'mesh-unanswered':
      return 'stopped before a peer answered';
    case 'cloud':
      return `${readout.label} · ${readout.model} · TTFT ${readout.ttftMs ?? '?'} ms · ${readout.tokensPerSecond === null ? '?' : readout.tokensPerSecond.toFixed(1)} tok/s`;
    case 'cloud-stopped':
      return `${readout.label} · stopped`;
    default: {
      const never: never = readout;
      return never;
    }
  }
}
