// Copies a text to the clipboard and says so (a toast, and the icon turns into a tick for a moment).
import { CheckIcon, CopyIcon } from 'lucide-react';
import { useState } from 'react';
import { Button } from '../../components/ui/button.tsx';
import { toast } from '../../lib/toast.ts';

export function CopyButton({
  text,
  label,
  testId,
  className,
}: {
  text: string;
  label: string;
  testId: string;
  className?: string;
}) {
  const [copied, setCopied] = useState(false);
  return (
    <Button
      variant="ghost"
      size="icon"
      aria-label={label}
      title={label}
      data-testid={testId}
      className={className}
      onClick={() =>
        void navigator.clipboard.writeText(text).then(
          () => {
            setCopied(true);
            toast('Copied');
            setTimeout(() => setCopied(false), 1500);
          },
          () => toast('The browser did not allow copying', 'error'),
        )
      }
    >
      {copied ? <CheckIcon /> : <CopyIcon />}
    </Button>
  );
}
