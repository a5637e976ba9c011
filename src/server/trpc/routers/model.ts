import { TRPCError } from '@trpc/server';
import { ModelRefInputSchema, type ManifestEntry } from '../../../shared/schemas/models.ts';
import type { Context } from '../context.ts';
import { authedProcedure, publicProcedure, router } from '../init.ts';

function entryOrThrow(ctx: Context, id: string): ManifestEntry {
  const entry = ctx.models.manifest.find((m) => m.id === id);
  if (!entry) throw new TRPCError({ code: 'NOT_FOUND', message: `No model ${id} in the catalogue` });
  return entry;
}

export const manifestRouter = router({
  /** The catalogue, each model with whether it is bundled or cached on this server. */
  list: publicProcedure.query(async ({ ctx }) => {
    const rows = await ctx.db.modelDownload.findMany({ select: { modelId: true, phase: true, revision: true, bytesTotal: true } });
    const byId = new Map(rows.map((row) => [row.modelId, row]));
    return ctx.models.manifest.map((entry) => {
      const row = byId.get(entry.id);
      const cached = row?.phase === 'READY';
      return {
        ...entry,
        totalSize: cached ? Number(row.bytesTotal) : entry.files.reduce((sum, f) => sum + (f.size ?? 0), 0) || null,
        cachedRevision: cached ? row.revision : null,
        serverStatus: entry.bundled ? ('bundled' as const) : cached ? ('cached' as const) : row ? row.phase.toLowerCase() : ('remote' as const),
      };
    });
  }),
});

/** Only the person who started a download may cancel or remove it (operator roles come with accounts). */
async function assertRequester(ctx: Context & { session: { userId: string } }, id: string, verb: string) {
  const row = await ctx.db.modelDownload.findUnique({ where: { modelId: id }, select: { requestedById: true } });
  if (row?.requestedById && row.requestedById !== ctx.session.userId) {
    throw new TRPCError({ code: 'FORBIDDEN', message: `Only the person who started this download can ${verb} it` });
  }
}

export const modelRouter = router({
  /** Starts (or joins) the server-side download of every file the model needs. */
  download: authedProcedure.input(ModelRefInputSchema).mutation(async ({ ctx, input }) => {
    const entry = entryOrThrow(ctx, input.id);
    if (entry.bundled) throw new TRPCError({ code: 'BAD_REQUEST', message: `${entry.name} ships with the app; nothing to download` });
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
  remove: authedProcedure.input(ModelRefInputSchema).mutation(async ({ ctx, input }) => {
    entryOrThrow(ctx, input.id);
    await assertRequester(ctx, input.id, 'remove');
    return { removed: await ctx.models.downloader.remove(input.id) };
  }),
});
