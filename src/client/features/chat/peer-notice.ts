// Whether this person has been told, for a room, that the peer answering reads the prompt (remembered per room in
// localStorage; docs/SECURITY.md, "Mesh: job records and trust in peers").
const KEY_PREFIX = 'mesh:peer-notice:';

export function peerNoticeRemembered(room: string): boolean {
  try {
    return localStorage.getItem(KEY_PREFIX + room) === 'accepted';
  } catch {
    return false;
  }
}

export function rememberPeerNotice(room: string): void {
  try {
    localStorage.setItem(KEY_PREFIX + room, 'accepted');
  } catch {
    // Storage disabled: the notice comes again at the next first prompt.
  }
}
