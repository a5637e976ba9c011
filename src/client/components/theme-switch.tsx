// The header's theme menu: dark, light, or follow the system.
import { MonitorIcon, MoonIcon, SunIcon } from 'lucide-react';
import type { ThemeChoice } from '../lib/theme.ts';
import { Button } from './ui/button.tsx';
import {
  DropdownMenu,
  DropdownMenuContent,
  DropdownMenuLabel,
  DropdownMenuRadioGroup,
  DropdownMenuRadioItem,
  DropdownMenuTrigger,
} from './ui/dropdown-menu.tsx';

const ICONS = { dark: MoonIcon, light: SunIcon, system: MonitorIcon } as const;
const LABELS = { dark: 'Dark', light: 'Light', system: 'System' } as const;

export function ThemeSwitch({ choice, onChoose }: { choice: ThemeChoice; onChoose(choice: ThemeChoice): void }) {
  const Icon = ICONS[choice];
  return (
    <DropdownMenu>
      <DropdownMenuTrigger asChild>
        <Button variant="ghost" size="icon" aria-label={`Theme: ${LABELS[choice]}`} data-testid="theme-switch">
          <Icon />
        </Button>
      </DropdownMenuTrigger>
      <DropdownMenuContent align="end">
        <DropdownMenuLabel>Theme</DropdownMenuLabel>
        <DropdownMenuRadioGroup value={choice} onValueChange={(value) => onChoose(value as ThemeChoice)}>
          {(Object.keys(LABELS) as ThemeChoice[]).map((value) => (
            <DropdownMenuRadioItem key={value} value={value} data-testid={`theme-${value}`}>
              {LABELS[value]}
            </DropdownMenuRadioItem>
          ))}
        </DropdownMenuRadioGroup>
      </DropdownMenuContent>
    </DropdownMenu>
  );
}
