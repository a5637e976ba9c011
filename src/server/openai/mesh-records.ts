// A /v1 mesh job's records (mesh-chat.ts): the same service tRPC's jobs.* use, as the key's account, written once the
// answer's text is out.
import type { JobRecorder } from '../../shared/mesh/mesh-answer.ts';
import type { PrismaClient } from '../db/client.ts';
import { type PeerLookup, finishJob, recordAttempt, recordCheck, startJob } from '../services/jobs.ts';

/** One ask's job records, written once `ready` settles (serviceRecorder). */
export type RecorderFor = (ready: Promise<void>) => JobRecorder;

/**
 * Job records as the key's account, through the same service tRPC's jobs.* use, written once the answer's text has
 * gone to the route (`ready`): the embedded database runs its queries on this thread, and a record's start written
 * beside the answer held its tokens back by 55 to 130 ms under load (bench/README.md, issue 14). The serving peer (a
 * pipeline job's every stage peer, pipeline-chat.ts) is looked up as it takes the job (it may have left by the time the row is written), and the record keeps that time.
 * Attempts, finish and check wait for the start, as before (src/shared/mesh/mesh-answer.ts).
 *
 * Each record first spends one of the account's job records (`spend`: JOB_RECORDS_PER_MINUTE, the budget tRPC's
 * jobs.* spend, so an account's records are one budget whether its app or its keys write them; docs/SECURITY.md). A
 * refused record is not written; the answer, already out, is not held back (mesh-answer.ts drops a failed record as
 * the app does).
 */
export function serviceRecorder(
  db: PrismaClient,
  peers: PeerLookup,
  userId: string,
  spend: () => Promise<void>,
): RecorderFor {
  return (ready) => ({
    start: async (input) => {
      const takenAt = new Date();
      // A pipeline job's every stage peer, looked up now as the server peer is.
      const taking = new Map(
        [input.serverPeerId, ...(input.stages?.map((stage) => stage.peerId) ?? [])].map((peerId) => {
          const peer = peers(input.room, peerId);
          peer.catch(() => undefined);
          return [peerId, peer] as const;
        }),
      );
      await ready;
      await spend();
      return startJob(db, (room, peerId) => taking.get(peerId) ?? peers(room, peerId), userId, input, takenAt);
    },
    attempt: async (input) => {
      await spend();
      return recordAttempt(db, peers, userId, input);
    },
    finish: async (input) => {
      await spend();
      return finishJob(db, userId, input);
    },
    check: async (input) => {
      await spend();
      return recordCheck(db, userId, input);
    },
  });
}
