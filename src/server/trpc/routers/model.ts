import { TRPCError } from '@trpc/server';
import { ModelRefInputSchema, type ManifestEntry } from '../../../shared/schemas/models.ts';
import type { ValidSession } from '../../services/session.ts';
import type { Context } from '../context.ts';
import { authedProcedure, costly, publicProcedure, router } from '../init.ts';

function entryOrThrow(ctx: Context, id: string): ManifestEntry {
  const entry = ctx.models.manifest.find((m) => m.id === id);
  if (!entry) throw new TRPCError({ code: 'NOT_FOUND', message: `No model ${id} in the catalogue` });
  return entry;
}

export const manifestRouter = router({
  /** The catalogue, each model with whether it is bundled or cached on this server. */
  list: publicProcedure.query(async ({ ctx }) => {
    const rows = await ctx.db.modelDownload.findMany({
      select: {
        modelId: true,
        phase: true,
        revision: true,
        bytesTotal: true,
        files: { select: { path: true, size: true }, orderBy: { path: 'asc' } },
      },
    });
    const byId = new Map(rows.map((row) => [row.modelId, row]));
    return ctx.models.manifest.map((entry) => {
      const row = byId.get(entry.id);
      const cached = row?.phase === 'READY';
      return {
        ...entry,
        // A Hub model's files are derived on download (transformers-files.ts): listed once the server holds them.
        files:
          entry.files.length > 0 || !cached
            ? entry.files
            : row.files.map((f) => ({ path: f.path, size: Number(f.size) })),
        totalSize: cached ? Number(row.bytesTotal) : entry.files.reduce((sum, f) => sum + (f.size ?? 0), 0) || null,
        cachedRevision: cached ? row.revision : null,
        serverStatus: entry.bundled
          ? ('bundled' as const)
          : cached
            ? ('cached' as const)
            : row
              ? row.phase.toLowerCase()
              : ('remote' as const),
      };
    });
  }),
});

/** Listed in OPERATORS: may cancel any download and remove cached models. Guests never are. */
function isOperator(ctx: Context & { session: ValidSession }): boolean {
  const { kind, username } = ctx.session.user;
  return kind === 'ACCOUNT' && username !== null && ctx.env.OPERATORS.includes(username);
}

/** Only the person who started a download (or an operator) may cancel it. */
async function assertRequester(ctx: Context & { session: ValidSession }, id: string, verb: string) {
  if (isOperator(ctx)) return;
  const row = await ctx.db.modelDownload.findUnique({ where: { modelId: id }, select: { requestedById: true } });
  if (row?.requestedById && row.requestedById !== ctx.session.userId) {
    throw new TRPCError({ code: 'FORBIDDEN', message: `Only the person who started this download can ${verb} it` });
  }
}

// A download costs the server bandwidth and disk, and anyone can be a guest in one request (docs/SECURITY.md).
const DOWNLOAD_NEEDS_ACCOUNT = 'Downloading a model to the server needs an account: sign up, then try again';

export const modelRouter = router({
  /** Starts (or joins) the server-side download of every file the model needs. */
  download: authedProcedure
    .use(costly('download'))
    .input(ModelRefInputSchema)
    .mutation(async ({ ctx, input }) => {
      const entry = entryOrThrow(ctx, input.id);
      // What the model is comes first: nobody needs an account to learn that the bundled one is never downloaded.
      if (entry.bundled)
        throw new TRPCError({ code: 'BAD_REQUEST', message: `${entry.name} ships with the app; nothing to download` });
      if (ctx.session.user.kind !== 'ACCOUNT')
        throw new TRPCError({ code: 'FORBIDDEN', message: DOWNLOAD_NEEDS_ACCOUNT });
      return ctx.models.downloader.start(entry, ctx.session.userId);
    }),
  status: publicProcedure.input(ModelRefInputSchema).query(async ({ ctx, input }) => {
    entryOrThrow(ctx, input.id);
    return ctx.models.downloader.status(input.id);
  }),
  cancel: authedProcedure.input(ModelRefInputSchema).mutation(async ({ ctx, input }) => {
    entryOrThrow(ctx, input.id);
    await assertRequester(ctx, input.id, 'cancel');
    return { cancelled: await ctx.models.downloader.cancel(input.id) };
  }),
  /** Deletes a model from the server's cache, for everyone: an operator's decision (OPERATORS). */
  remove: authedProcedure.input(ModelRefInputSchema).mutation(async ({ ctx, input }) => {
    entryOrThrow(ctx, input.id);
    if (!isOperator(ctx))
      throw new TRPCError({
        code: 'FORBIDDEN',
        message: 'Only an operator of this server can remove a model from its cache',
      });
    return { removed: await ctx.models.downloader.remove(input.id) };
  }),
});
