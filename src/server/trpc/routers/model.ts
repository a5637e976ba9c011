import { TRPCError } from '@trpc/server';
import {
  type DownloadDtype,
  ModelAddInputSchema,
  ModelDownloadInputSchema,
  ModelRefInputSchema,
} from '../../../shared/schemas/models.ts';
import { downloadDtype, findEntry, listCatalogue } from '../../models/catalogue.ts';
import type { ValidSession } from '../../services/session.ts';
import { addModel, forgetModel } from '../../services/user-models.ts';
import type { Context } from '../context.ts';
import { accountProcedure, authedProcedure, costly, publicProcedure, router } from '../init.ts';

const entryOf = (ctx: Context, id: string) => findEntry(ctx.db, ctx.models.manifest, id, ctx.session?.userId ?? null);

export const manifestRouter = router({
  /**
   * The catalogue, each model with whether it is bundled or cached on this server (per dtype), and the models this
   * person added by repo id (or an operator added for everyone).
   */
  list: publicProcedure.query(({ ctx }) => listCatalogue(ctx.db, ctx.models.manifest, ctx.session?.userId ?? null)),
});

/** Listed in OPERATORS: may cancel any download, remove cached models and add models for everyone. Guests never are. */
function isOperator(ctx: Context & { session: ValidSession }): boolean {
  const { kind, username } = ctx.session.user;
  return kind === 'ACCOUNT' && username !== null && ctx.env.OPERATORS.includes(username);
}

/** Only the person who started a download (or an operator) may cancel it. */
async function assertRequester(
  ctx: Context & { session: ValidSession },
  id: string,
  dtypes: DownloadDtype[],
  verb: string,
) {
  if (isOperator(ctx)) return;
  for (const dtype of dtypes) {
    const requester = await ctx.models.downloader.requester(id, dtype);
    if (requester && requester !== ctx.session.userId) {
      throw new TRPCError({ code: 'FORBIDDEN', message: `Only the person who started this download can ${verb} it` });
    }
  }
}

// A download costs the server bandwidth and disk, and anyone can be a guest in one request (docs/SECURITY.md).
const DOWNLOAD_NEEDS_ACCOUNT = 'Downloading a model to the server needs an account: sign up, then try again';
const ADD_NEEDS_ACCOUNT = 'Adding a model by its repo id needs an account: sign up, then try again';

export const modelRouter = router({
  /**
   * Starts (or joins) the server-side download of the files the model needs: of one dtype when the input names it
   * or the device's backend (what that device will run), else of every dtype the entry names.
   */
  download: authedProcedure
    .use(costly('download'))
    .input(ModelDownloadInputSchema)
    .mutation(async ({ ctx, input }) => {
      const source = await entryOf(ctx, input.id);
      const { entry } = source;
      // What the model is comes first: nobody needs an account to learn that the bundled one is never downloaded.
      if (entry.bundled)
        throw new TRPCError({ code: 'BAD_REQUEST', message: `${entry.name} ships with the app; nothing to download` });
      if (ctx.session.user.kind !== 'ACCOUNT')
        throw new TRPCError({ code: 'FORBIDDEN', message: DOWNLOAD_NEEDS_ACCOUNT });
      return ctx.models.downloader.start(entry, ctx.session.userId, downloadDtype(source, input));
    }),
  /** The download of the model's dtype (as `download` names it), polled while it runs. */
  status: publicProcedure.input(ModelDownloadInputSchema).query(async ({ ctx, input }) => {
    const source = await entryOf(ctx, input.id);
    return ctx.models.downloader.status(input.id, downloadDtype(source, input));
  }),
  /** Stops the model's download of a dtype (or, naming none, every download of the model). */
  cancel: authedProcedure.input(ModelDownloadInputSchema).mutation(async ({ ctx, input }) => {
    const source = await entryOf(ctx, input.id);
    const named = input.dtype || input.backend ? downloadDtype(source, input) : undefined;
    const dtypes: DownloadDtype[] = named
      ? [named]
      : ['*', ...new Set([source.entry.dtype.webgpu, source.entry.dtype.wasm])];
    await assertRequester(ctx, input.id, dtypes, 'cancel');
    return { cancelled: await ctx.models.downloader.cancel(input.id, named) };
  }),
  /** Deletes a model from the server's cache (every dtype), for everyone: an operator's decision (OPERATORS). */
  remove: authedProcedure.input(ModelRefInputSchema).mutation(async ({ ctx, input }) => {
    await entryOf(ctx, input.id);
    if (!isOperator(ctx))
      throw new TRPCError({
        code: 'FORBIDDEN',
        message: 'Only an operator of this server can remove a model from its cache',
      });
    return { removed: await ctx.models.downloader.remove(input.id) };
  }),
  /**
   * Adds a Hub model to this account's catalogue by its repo id or URL, once the Hub shows it passes every check
   * (README "Add a model by its repo id"); an operator may add it for everyone. A refusal names the failed check.
   */
  add: accountProcedure(ADD_NEEDS_ACCOUNT)
    .use(costly('modelAdd'))
    .input(ModelAddInputSchema)
    .mutation(({ ctx, input }) =>
      addModel(
        { db: ctx.db, hub: ctx.models.hub, env: ctx.env, builtin: ctx.models.manifest, signal: ctx.exchangeEnded },
        { userId: ctx.session.userId, operator: isOperator(ctx) },
        input,
      ),
    ),
  /** Takes a model this account added out of its catalogue (cached files stay for whoever else has it). */
  forget: accountProcedure(ADD_NEEDS_ACCOUNT)
    .input(ModelRefInputSchema)
    .mutation(({ ctx, input }) =>
      forgetModel(ctx.db, { userId: ctx.session.userId, operator: isOperator(ctx) }, input.id),
    ),
});
