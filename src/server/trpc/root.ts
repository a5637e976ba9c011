import { router } from './init.ts';
import { apiKeyRouter } from './routers/api-key.ts';
import { authRouter } from './routers/auth.ts';
import { chatRouter } from './routers/chat.ts';
import { conversationRouter } from './routers/conversation.ts';
import { jobsRouter } from './routers/jobs.ts';
import { presetRouter } from './routers/preset.ts';
import { roomRouter } from './routers/room.ts';
import { healthQuery } from './routers/health.ts';
import { manifestRouter, modelRouter } from './routers/model.ts';

export const appRouter = router({
  health: healthQuery,
  auth: authRouter,
  manifest: manifestRouter,
  models: modelRouter,
  chat: chatRouter,
  conversation: conversationRouter,
  preset: presetRouter,
  room: roomRouter,
  jobs: jobsRouter,
  apiKey: apiKeyRouter,
});

export type AppRouter = typeof appRouter;
