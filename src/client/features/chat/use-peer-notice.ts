// Before the first prompt goes to a peer in a room: a notice that the peer answering reads it, with Continue and
// Cancel. The answer waits on it; Continue is remembered for the room.
import { useCallback, useState } from 'react';
import { peerNoticeRemembered, rememberPeerNotice } from './peer-notice.ts';

export interface PeerNotice {
  room: string;
  accept(): void;
  cancel(): void;
}

export function usePeerNotice() {
  const [notice, setNotice] = useState<PeerNotice | null>(null);
  /** Resolves true at once for a room whose notice was accepted, else when the person chooses. */
  const peerNoticeAccepted = useCallback((room: string): Promise<boolean> => {
    if (peerNoticeRemembered(room)) return Promise.resolve(true);
    return new Promise((resolve) => {
      const settle = (accepted: boolean) => {
        setNotice(null);
        if (accepted) rememberPeerNotice(room);
        resolve(accepted);
      };
      setNotice({ room, accept: () => settle(true), cancel: () => settle(false) });
    });
  }, []);
  return { notice, peerNoticeAccepted };
}
