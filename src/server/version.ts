// Version and commit of this build. The commit comes from GIT_COMMIT (env.ts) or the checkout's .git, if any.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { projectPath } from './paths.ts';
import pkg from '../../package.json' with { type: 'json' };
import { isCommitSha } from '../shared/schemas/models.ts';

export const APP_VERSION: string = pkg.version;

export interface BuildInfo {
  version: string;
  commit: string | null;
}

export function buildInfo(gitCommit: string | undefined): BuildInfo {
  return { version: APP_VERSION, commit: gitCommit ?? readGitCommit() };
}

function readGitCommit(): string | null {
  try {
    const gitDir = projectPath('.git') + path.sep;
    const head = readFileSync(`${gitDir}HEAD`, 'utf8').trim();
    if (!head.startsWith('ref: ')) return isCommitSha(head) ? head : null;
    const ref = head.slice(5);
    try {
      return readFileSync(`${gitDir}${ref}`, 'utf8').trim();
    } catch {
      const packed = readFileSync(`${gitDir}packed-refs`, 'utf8');
      return (
        packed
          .split('\n')
          .find((line) => line.endsWith(` ${ref}`))
          ?.split(' ')[0] ?? null
      );
    }
  } catch {
    return null;
  }
}
