// The theme: dark (the default), light, or whatever the system prefers, kept on this device. The choice resolves
// to `data-theme` on <html>, which styles.css's tokens and Tailwind's `dark:` variant (index.css) both read.
import { useEffect, useState, useSyncExternalStore } from 'react';

export type ThemeChoice = 'dark' | 'light' | 'system';
export type ResolvedTheme = 'dark' | 'light';
const KEY = 'theme';

function stored(): ThemeChoice {
  const value = localStorage.getItem(KEY);
  return value === 'light' || value === 'system' ? value : 'dark';
}

const query = () => window.matchMedia('(prefers-color-scheme: light)');
function subscribeSystem(onChange: () => void) {
  const media = query();
  media.addEventListener('change', onChange);
  return () => media.removeEventListener('change', onChange);
}
const systemTheme = (): ResolvedTheme => (query().matches ? 'light' : 'dark');

export function useTheme(): { choice: ThemeChoice; resolved: ResolvedTheme; choose(choice: ThemeChoice): void } {
  const [choice, setChoice] = useState<ThemeChoice>(stored);
  const system = useSyncExternalStore(subscribeSystem, systemTheme);
  const resolved = choice === 'system' ? system : choice;
  useEffect(() => {
    document.documentElement.dataset.theme = resolved;
    localStorage.setItem(KEY, choice);
  }, [choice, resolved]);
  return { choice, resolved, choose: setChoice };
}
