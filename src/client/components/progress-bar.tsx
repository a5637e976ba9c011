import * as Progress from '@radix-ui/react-progress';

export function ProgressBar({ value, max, label }: { value: number; max: number; label: string }) {
  const percent = max > 0 ? Math.min(100, (value / max) * 100) : 0;
  return (
    <Progress.Root className="progress" value={percent} max={100} aria-label={label}>
      <Progress.Indicator className="progress-indicator" style={{ transform: `translateX(-${100 - percent}%)` }} />
    </Progress.Root>
  );
}
