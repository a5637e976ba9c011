// The Hub's refusals in words a person can act on. The Hub names its errors in `X-Error-Code` (RepoNotFound,
// RevisionNotFound, EntryNotFound, GatedRepo), answers 401 rather than 404 for a repo it will not show, 403 to a
// token whose account has not been granted a gated repo, and 429 with `Retry-After` when it rate-limits.
import type { IncomingHttpHeaders } from 'node:http';
import { DownloadError } from './download-types.ts';

export interface RefusedRequest {
  repo: string;
  /** The revision or commit asked for, when the request names one. */
  revision?: string | undefined;
  /** The repo file asked for, when the request is for one. */
  file?: string | undefined;
  /** Whether this server sent HF_TOKEN. */
  withToken: boolean;
}

/** Longest `Retry-After` the downloader waits out by itself; a longer one fails the download with the wait named. */
export const MAX_RETRY_AFTER_MS = 60_000;

function retryAfterMs(header: string | string[] | undefined): number | null {
  const value = Array.isArray(header) ? header[0] : header;
  if (!value) return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, date - Date.now());
}

/** The DownloadError for a Hub answer that is not a success. */
export function hubRefusal(status: number, headers: IncomingHttpHeaders, request: RefusedRequest): DownloadError {
  const code = String(headers['x-error-code'] ?? '');
  const { repo, revision, file, withToken } = request;
  const at = revision ? ` at ${revision.slice(0, 12)}` : '';
  if (status === 429) {
    const wait = retryAfterMs(headers['retry-after']);
    const when = wait === null ? 'later' : `in ${Math.ceil(wait / 1000)} s`;
    return new DownloadError('RATE_LIMITED', `The Hub is rate-limiting this server; try again ${when}`, {
      retryAfterMs: wait,
    });
  }
  if (code === 'GatedRepo' || status === 403) {
    return new DownloadError(
      'GATED',
      withToken
        ? `${repo} is gated and the Hub account of this server's HF_TOKEN has not been granted access: accept the model's conditions on its Hub page with that account`
        : `${repo} is gated: accept the model's conditions on its Hub page, then give this server that account's token as HF_TOKEN`,
    );
  }
  if (code === 'RevisionNotFound')
    return new DownloadError('NOT_FOUND', `${repo} has no revision ${revision ?? ''}`.trim());
  if (code === 'EntryNotFound' || (file && status === 404)) {
    return new DownloadError('NOT_FOUND', `${file ?? 'A file'} is not in ${repo}${at}`);
  }
  if (code === 'RepoNotFound' || status === 401 || status === 404) {
    return new DownloadError(
      'NOT_FOUND',
      withToken
        ? `The Hub has no repo ${repo} that HF_TOKEN can see`
        : `The Hub has no repo ${repo} (or it is private: set HF_TOKEN)`,
    );
  }
  if (status >= 500) return new DownloadError('HUB_UNREACHABLE', `The Hub answered ${status}`);
  return new DownloadError('HUB_ERROR', `The Hub answered ${status} for ${file ?? repo}`);
}
