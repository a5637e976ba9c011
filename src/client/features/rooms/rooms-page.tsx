// The Rooms screen: the list of rooms, creating one (accounts), joining by invite link; a live room is room-page.tsx.
import { useEffect, useId, useState } from 'react';
import { Link, useLocation } from 'wouter';
import { ROOM_LIMITS } from '../../../shared/schemas/room.ts';
import { Button } from '../../components/ui/button.tsx';
import { Card } from '../../components/ui/card.tsx';
import { Field, Input } from '../../components/ui/input.tsx';
import { Switch } from '../../components/ui/switch.tsx';
import { ensureSession } from '../../lib/session.ts';
import { api } from '../../lib/trpc.ts';

export function RoomsPage() {
  const me = api.auth.me.useQuery();
  const rooms = api.room.list.useInfiniteQuery(
    { limit: ROOM_LIMITS.pageSize },
    { enabled: Boolean(me.data), getNextPageParam: (page) => page.nextCursor },
  );
  const utils = api.useUtils();
  const [, navigate] = useLocation();
  const [name, setName] = useState('');
  const [visibility, setVisibility] = useState<'PUBLIC' | 'PRIVATE'>('PUBLIC');
  const privateId = useId();
  const create = api.room.create.useMutation({
    onSuccess: (room) => navigate(`/rooms/${room.slug}${room.inviteCode ? `?invite=${room.inviteCode}` : ''}`),
  });
  const isAccount = me.data?.kind === 'ACCOUNT';

  useEffect(() => {
    // Rooms need a session; a guest identity is made on first visit.
    if (me.data === null) void ensureSession().then(() => utils.auth.me.invalidate());
  }, [me.data, utils]);

  return (
    <section aria-labelledby="rooms-title" className="flex min-w-0 flex-col gap-4">
      <h1 id="rooms-title" className="m-0 text-2xl font-semibold">
        Rooms
      </h1>
      <p className="m-0 text-muted">
        Browsers in a room connect to each other directly (WebRTC) and can run models for one another.
      </p>
      <ul className="m-0 flex list-none flex-col gap-2 p-0">
        {rooms.data?.pages
          .flatMap((page) => page.rooms)
          .map((room) => (
            <li key={room.id}>
              <Card className="flex-row flex-wrap items-baseline gap-x-3 gap-y-1 py-3">
                <Link href={`/rooms/${room.slug}`} data-testid="room-link" className="font-medium">
                  {room.name}
                </Link>
                <span className="text-sm text-muted">
                  {room.visibility === 'PRIVATE' ? 'private' : 'public'} · {room.memberCount} members · up to{' '}
                  {room.capacity}
                </span>
              </Card>
            </li>
          ))}
      </ul>
      {rooms.hasNextPage && (
        <Button
          className="self-start"
          data-testid="rooms-more"
          disabled={rooms.isFetchingNextPage}
          onClick={() => void rooms.fetchNextPage()}
        >
          {rooms.isFetchingNextPage ? 'Loading…' : 'Show more'}
        </Button>
      )}
      {isAccount ? (
        <form
          className="flex flex-wrap items-end gap-3"
          onSubmit={(event) => {
            event.preventDefault();
            create.mutate({ name, visibility, capacity: 8 });
          }}
        >
          <Field>
            New room
            <Input
              data-testid="room-name"
              value={name}
              onChange={(event) => setName(event.target.value)}
              maxLength={64}
              required
            />
          </Field>
          <div className="flex min-h-11 items-center gap-2 sm:min-h-9">
            <Switch
              id={privateId}
              checked={visibility === 'PRIVATE'}
              onCheckedChange={(checked) => setVisibility(checked ? 'PRIVATE' : 'PUBLIC')}
            />
            <label htmlFor={privateId} className="text-sm">
              Private (invite link)
            </label>
          </div>
          <Button type="submit" variant="default" data-testid="room-create" disabled={create.isPending}>
            Create
          </Button>
        </form>
      ) : (
        <p className="m-0 text-muted">
          Guests can use the global room; creating or joining other rooms needs an account.
        </p>
      )}
      {create.error && (
        <p className="m-0 text-destructive" role="alert">
          {create.error.message}
        </p>
      )}
    </section>
  );
}
