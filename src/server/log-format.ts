// Log lines: readable on a terminal, JSON for everything that reads logs (files, journald, shippers, tests).
import type { Env } from './env.ts';

/** What LOG_FORMAT asks for, given whether stdout is a terminal. */
export function logFormat(setting: Env['LOG_FORMAT'], stdoutIsTerminal: boolean): 'pretty' | 'json' {
  if (setting !== 'auto') return setting;
  return stdoutIsTerminal ? 'pretty' : 'json';
}

/**
 * pino-pretty as a stream in this thread, not as a pino transport: a transport runs in a worker thread of its own,
 * tens of MiB for a terminal's log lines (issue 16). Loaded only when used.
 */
export async function prettyLogStream() {
  const { default: pretty } = await import('pino-pretty');
  return pretty({ translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname', sync: true });
}
