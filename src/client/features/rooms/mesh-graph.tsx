// The room as a picture (SVG): this device in the middle, its peers around it.
import type { MeshSnapshot } from '../../../shared/rtc/mesh-room.ts';

const LABEL = 'fill-foreground text-[10px]';

/** The room as a picture: this device in the middle, peers around it, each line coloured by its connection. */
export function MeshGraph({ self, peers }: { self: string; peers: MeshSnapshot['peers'] }) {
  const size = 220;
  const centre = size / 2;
  const radius = size / 2 - 28;
  return (
    <svg
      className="block max-w-full"
      width={size}
      height={size}
      viewBox={`0 0 ${size} ${size}`}
      role="img"
      aria-label={`You and ${peers.length} peers`}
    >
      {peers.map((peer, i) => {
        const angle = (2 * Math.PI * i) / peers.length - Math.PI / 2;
        const x = centre + radius * Math.cos(angle);
        const y = centre + radius * Math.sin(angle);
        const open = peer.link.channel === 'open';
        const sharing = (peer.mesh ?? peer.capabilities).sharing;
        return (
          <g key={peer.peerId}>
            <line
              x1={centre}
              y1={centre}
              x2={x}
              y2={y}
              className={open ? 'stroke-primary stroke-2' : 'stroke-border stroke-2 [stroke-dasharray:4_4]'}
            />
            <circle
              cx={x}
              cy={y}
              r={10}
              className={`fill-surface stroke-2 ${sharing ? 'stroke-primary' : 'stroke-muted'}`}
            />
            <text x={x} y={y + 24} textAnchor="middle" className={LABEL}>
              {peer.displayName.slice(0, 14)}
            </text>
          </g>
        );
      })}
      <circle cx={centre} cy={centre} r={12} className="fill-primary stroke-primary stroke-2" />
      <text x={centre} y={centre + 28} textAnchor="middle" className={LABEL}>
        {self.slice(0, 14)}
      </text>
    </svg>
  );
}
