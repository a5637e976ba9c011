// Conversations as files: exported as Markdown (to read) and JSON (to import again, here or on another device), and
// imported from JSON, checked in full first: a bad file gets a clear error and changes nothing.
import { z } from 'zod';
import { CHAT_LIMITS, ChatRoleSchema } from '../../../shared/schemas/chat.ts';
import { CONVERSATION_LIMITS } from '../../../shared/schemas/conversation.ts';
import { type Conversation, titleOf } from './conversations.ts';

export const CONVERSATION_FILE_LIMITS = { bytes: 8 * 1024 * 1024, messages: 1000, readoutChars: 500 } as const;
const FORMAT = 'mesh-nanollm.conversation';

const ConversationFileSchema = z
  .object({
    format: z.literal(FORMAT, `Not a Mesh NanoLLM conversation (its "format" is not "${FORMAT}")`),
    version: z.literal(1, 'A conversation file of a version this app does not know'),
    title: z.string().trim().min(1).max(CONVERSATION_LIMITS.titleChars),
    exportedAt: z.string().max(40).optional(),
    messages: z
      .array(
        z
          .object({
            role: ChatRoleSchema,
            content: z.string().max(CHAT_LIMITS.messageChars),
            readout: z.string().max(CONVERSATION_FILE_LIMITS.readoutChars).optional(),
          })
          .strict(),
      )
      .min(1, 'The conversation has no messages')
      .max(CONVERSATION_FILE_LIMITS.messages),
  })
  .strict();
type ConversationFile = z.infer<typeof ConversationFileSchema>;

export function toJson(conversation: Conversation): string {
  const file: ConversationFile = {
    format: FORMAT,
    version: 1,
    title: conversation.title,
    exportedAt: new Date().toISOString(),
    messages: conversation.messages.map(({ role, content, readout }) => ({
      role,
      content,
      ...(readout ? { readout: readout.slice(0, CONVERSATION_FILE_LIMITS.readoutChars) } : {}),
    })),
  };
  return `${JSON.stringify(file, null, 2)}\n`;
}

const HEADINGS = { user: 'You', assistant: 'Answer', system: 'System' } as const;

export function toMarkdown(conversation: Conversation): string {
  const parts = [`# ${conversation.title}`];
  for (const m of conversation.messages) {
    parts.push(`## ${HEADINGS[m.role]}`, m.content);
    if (m.readout) parts.push(`_${m.readout}_`);
  }
  return `${parts.join('\n\n')}\n`;
}

/** A file name from the title: letters, digits and dashes. */
export function fileName(conversation: Conversation, extension: string): string {
  const stem =
    conversation.title
      .replace(/[^\p{L}\p{N}]+/gu, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 60) || 'chat';
  return `${stem}.${extension}`;
}

export function download(name: string, text: string, type: string): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = document.createElement('a');
  link.href = url;
  link.download = name;
  link.click();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** The conversation in a JSON file, as a new conversation of this device; throws an Error saying what is wrong. */
export async function readConversationFile(file: File): Promise<Conversation> {
  if (file.size > CONVERSATION_FILE_LIMITS.bytes)
    throw new Error(`${file.name} is over ${CONVERSATION_FILE_LIMITS.bytes / 1024 / 1024} MB: not imported`);
  let data: unknown;
  try {
    data = JSON.parse(await file.text());
  } catch {
    throw new Error(`${file.name} is not JSON: export a conversation as JSON to import it`);
  }
  const parsed = ConversationFileSchema.safeParse(data);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.length ? ` (at ${issue.path.join('.')})` : '';
    throw new Error(`${file.name} was not imported: ${issue?.message ?? 'not a conversation'}${where}`);
  }
  const { title, messages } = parsed.data;
  return {
    id: crypto.randomUUID(),
    title: title || titleOf(messages),
    titled: true,
    updatedAt: Date.now(),
    messages,
  };
}
