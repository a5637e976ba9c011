// A determinate progress bar (Radix: role progressbar with its value announced).
import * as Progress from '@radix-ui/react-progress';

export function ProgressBar({ value, max, label }: { value: number; max: number; label: string }) {
  const percent = max > 0 ? Math.min(100, (value / max) * 100) : 0;
  return (
    <Progress.Root
      className="relative h-2 w-full overflow-hidden rounded-full bg-border"
      value={percent}
      max={100}
      aria-label={label}
    >
      <Progress.Indicator
        className="size-full bg-primary transition-transform duration-200"
        style={{ transform: `translateX(-${100 - percent}%)` }}
      />
    </Progress.Root>
  );
}
