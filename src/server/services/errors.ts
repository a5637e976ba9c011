// What a service refuses, in its own terms: services know nothing of tRPC or HTTP. Each edge maps the kind to its
// wire: trpc/init.ts to a TRPCError code for every procedure, the /v1 routes to OpenAI's error shape.

export type RefusalKind =
  /** Not there, or not this caller's to see (the two are not told apart). */
  | 'NOT_FOUND'
  /** There, but this caller may not do this. */
  | 'FORBIDDEN'
  /** The state it is in does not allow it (already finished, full, checked already). */
  | 'CONFLICT'
  /** The request names something inconsistent with what is recorded. */
  | 'INVALID'
  /** Over a count this caller may hold at once. */
  | 'TOO_MANY'
  /** Over a size this caller may keep. */
  | 'TOO_LARGE';

export class ServiceError extends Error {
  override name = 'ServiceError';
  constructor(
    readonly kind: RefusalKind,
    message: string,
    /** Which check of several refused (models.add names it, so a person knows what to change). */
    readonly check?: string,
  ) {
    super(message);
  }
}
