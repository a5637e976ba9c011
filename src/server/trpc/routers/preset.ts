// Presets of chat settings kept with the account. Guests keep theirs on their device: these procedures refuse them.
import { PresetRefSchema, PresetSchema } from '../../../shared/schemas/chat-settings.ts';
import { listPresets, removePreset, savePreset } from '../../services/preset.ts';
import { accountProcedure, router } from '../init.ts';

const accountOnly = accountProcedure('Guests keep their presets on their device; sign up to keep them with an account');

export const presetRouter = router({
  list: accountOnly.query(({ ctx }) => listPresets(ctx.db, ctx.session.userId)),
  save: accountOnly.input(PresetSchema).mutation(async ({ ctx, input }) => {
    await savePreset(ctx.db, ctx.session.userId, input.name, input.settings);
    return { saved: true };
  }),
  remove: accountOnly.input(PresetRefSchema).mutation(async ({ ctx, input }) => {
    await removePreset(ctx.db, ctx.session.userId, input.name);
    return { removed: true };
  }),
});
