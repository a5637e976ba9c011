// The conversation list as a drawer for narrow screens (a phone at 390 px); loaded lazily with Radix's dialog.
import { MenuIcon } from 'lucide-react';
import { type ComponentProps, useState } from 'react';
import { Button } from '../../components/ui/button.tsx';
import { Sheet, SheetContent, SheetDescription, SheetTitle, SheetTrigger } from '../../components/ui/sheet.tsx';
import { ConversationList } from './conversation-list.tsx';

export default function ConversationsDrawer(props: ComponentProps<typeof ConversationList>) {
  const [open, setOpen] = useState(false);
  // Choosing a conversation (or a new one) closes the drawer on the chat.
  const closing = (act: (id: string) => void) => (id: string) => {
    setOpen(false);
    act(id);
  };
  return (
    <Sheet open={open} onOpenChange={setOpen}>
      <SheetTrigger asChild>
        <Button size="icon" aria-label="Conversations" data-testid="conversations-drawer">
          <MenuIcon />
        </Button>
      </SheetTrigger>
      <SheetContent side="left" className="conversations" aria-describedby={undefined}>
        <SheetTitle className="m-0 text-lg">Conversations</SheetTitle>
        <SheetDescription className="sr-only">Open, start or delete a conversation</SheetDescription>
        <ConversationList
          {...props}
          onNew={() => closing(() => props.onNew())('')}
          onOpen={closing(props.onOpen)}
          onRemove={props.onRemove}
          onImport={(file) => {
            setOpen(false);
            props.onImport(file);
          }}
        />
      </SheetContent>
    </Sheet>
  );
}
