-- CreateSchema
CREATE SCHEMA IF NOT EXISTS "public";

-- CreateEnum
CREATE TYPE "UserKind" AS ENUM ('GUEST', 'ACCOUNT');

-- CreateEnum
CREATE TYPE "RoomVisibility" AS ENUM ('PUBLIC', 'PRIVATE');

-- CreateEnum
CREATE TYPE "RoomRole" AS ENUM ('OWNER', 'MEMBER');

-- CreateEnum
CREATE TYPE "DownloadPhase" AS ENUM ('QUEUED', 'FETCHING', 'DOWNLOADING', 'VERIFYING', 'READY', 'FAILED', 'CANCELLED');

-- CreateEnum
CREATE TYPE "JobRoute" AS ENUM ('LOCAL', 'MESH', 'CLOUD');

-- CreateEnum
CREATE TYPE "JobOutcome" AS ENUM ('RUNNING', 'COMPLETED', 'CANCELLED', 'FAILED', 'REJECTED');

-- CreateEnum
CREATE TYPE "MessageRole" AS ENUM ('SYSTEM', 'USER', 'ASSISTANT');

-- CreateTable
CREATE TABLE "User" (
    "id" UUID NOT NULL,
    "kind" "UserKind" NOT NULL DEFAULT 'GUEST',
    "username" VARCHAR(32),
    "displayName" VARCHAR(64) NOT NULL,
    "passwordHash" VARCHAR(256),
    "failedLogins" INTEGER NOT NULL DEFAULT 0,
    "lockedUntil" TIMESTAMP(3),
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "User_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Session" (
    "id" VARCHAR(32) NOT NULL,
    "secretHash" CHAR(64) NOT NULL,
    "userId" UUID NOT NULL,
    "idleExpiresAt" TIMESTAMP(3) NOT NULL,
    "expiresAt" TIMESTAMP(3) NOT NULL,
    "lastActiveAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "userAgent" VARCHAR(256),
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "Session_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Room" (
    "id" UUID NOT NULL,
    "slug" VARCHAR(64) NOT NULL,
    "name" VARCHAR(64) NOT NULL,
    "visibility" "RoomVisibility" NOT NULL DEFAULT 'PUBLIC',
    "capacity" INTEGER NOT NULL DEFAULT 16,
    "inviteCode" VARCHAR(64),
    "ownerId" UUID,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "Room_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "RoomMember" (
    "roomId" UUID NOT NULL,
    "userId" UUID NOT NULL,
    "role" "RoomRole" NOT NULL DEFAULT 'MEMBER',
    "joinedAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "lastSeenAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "RoomMember_pkey" PRIMARY KEY ("roomId","userId")
);

-- CreateTable
CREATE TABLE "ModelDownload" (
    "id" UUID NOT NULL,
    "modelId" VARCHAR(128) NOT NULL,
    "repo" VARCHAR(128) NOT NULL,
    "revision" VARCHAR(64) NOT NULL,
    "phase" "DownloadPhase" NOT NULL DEFAULT 'QUEUED',
    "bytesDone" BIGINT NOT NULL DEFAULT 0,
    "bytesTotal" BIGINT NOT NULL DEFAULT 0,
    "errorCode" VARCHAR(64),
    "errorMessage" VARCHAR(1024),
    "requestedById" UUID,
    "startedAt" TIMESTAMP(3),
    "finishedAt" TIMESTAMP(3),
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "ModelDownload_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "ModelDownloadFile" (
    "id" UUID NOT NULL,
    "downloadId" UUID NOT NULL,
    "path" VARCHAR(512) NOT NULL,
    "size" BIGINT NOT NULL DEFAULT 0,
    "sha256" VARCHAR(64),
    "bytesDone" BIGINT NOT NULL DEFAULT 0,
    "phase" "DownloadPhase" NOT NULL DEFAULT 'QUEUED',
    "errorCode" VARCHAR(64),
    "errorMessage" VARCHAR(1024),
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "ModelDownloadFile_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "InferenceJob" (
    "id" UUID NOT NULL,
    "roomId" UUID,
    "requesterId" UUID NOT NULL,
    "serverId" UUID,
    "route" "JobRoute" NOT NULL,
    "provider" VARCHAR(32),
    "modelId" VARCHAR(128) NOT NULL,
    "modelSha256" VARCHAR(64),
    "backend" VARCHAR(16),
    "tokensIn" INTEGER NOT NULL DEFAULT 0,
    "tokensOut" INTEGER NOT NULL DEFAULT 0,
    "ttftMs" INTEGER,
    "tokensPerSecond" DOUBLE PRECISION,
    "outcome" "JobOutcome" NOT NULL DEFAULT 'RUNNING',
    "failoverCount" INTEGER NOT NULL DEFAULT 0,
    "errorCode" VARCHAR(64),
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,
    "finishedAt" TIMESTAMP(3),

    CONSTRAINT "InferenceJob_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Conversation" (
    "id" UUID NOT NULL,
    "userId" UUID NOT NULL,
    "title" VARCHAR(200) NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "Conversation_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Message" (
    "id" UUID NOT NULL,
    "conversationId" UUID NOT NULL,
    "role" "MessageRole" NOT NULL,
    "content" TEXT NOT NULL,
    "route" "JobRoute",
    "provider" VARCHAR(32),
    "modelId" VARCHAR(128),
    "backend" VARCHAR(16),
    "tokensOut" INTEGER,
    "ttftMs" INTEGER,
    "tokensPerSecond" DOUBLE PRECISION,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "Message_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "User_username_key" ON "User"("username");

-- CreateIndex
CREATE INDEX "User_kind_createdAt_idx" ON "User"("kind", "createdAt");

-- CreateIndex
CREATE INDEX "Session_userId_idx" ON "Session"("userId");

-- CreateIndex
CREATE INDEX "Session_expiresAt_idx" ON "Session"("expiresAt");

-- CreateIndex
CREATE UNIQUE INDEX "Room_slug_key" ON "Room"("slug");

-- CreateIndex
CREATE UNIQUE INDEX "Room_inviteCode_key" ON "Room"("inviteCode");

-- CreateIndex
CREATE INDEX "Room_visibility_createdAt_idx" ON "Room"("visibility", "createdAt");

-- CreateIndex
CREATE INDEX "Room_ownerId_idx" ON "Room"("ownerId");

-- CreateIndex
CREATE INDEX "RoomMember_userId_idx" ON "RoomMember"("userId");

-- CreateIndex
CREATE UNIQUE INDEX "ModelDownload_modelId_key" ON "ModelDownload"("modelId");

-- CreateIndex
CREATE INDEX "ModelDownload_repo_revision_idx" ON "ModelDownload"("repo", "revision");

-- CreateIndex
CREATE INDEX "ModelDownload_phase_idx" ON "ModelDownload"("phase");

-- CreateIndex
CREATE UNIQUE INDEX "ModelDownloadFile_downloadId_path_key" ON "ModelDownloadFile"("downloadId", "path");

-- CreateIndex
CREATE INDEX "InferenceJob_requesterId_createdAt_idx" ON "InferenceJob"("requesterId", "createdAt");

-- CreateIndex
CREATE INDEX "InferenceJob_serverId_createdAt_idx" ON "InferenceJob"("serverId", "createdAt");

-- CreateIndex
CREATE INDEX "InferenceJob_roomId_createdAt_idx" ON "InferenceJob"("roomId", "createdAt");

-- CreateIndex
CREATE INDEX "Conversation_userId_updatedAt_idx" ON "Conversation"("userId", "updatedAt");

-- CreateIndex
CREATE INDEX "Message_conversationId_createdAt_idx" ON "Message"("conversationId", "createdAt");

-- AddForeignKey
ALTER TABLE "Session" ADD CONSTRAINT "Session_userId_fkey" FOREIGN KEY ("userId") REFERENCES "User"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Room" ADD CONSTRAINT "Room_ownerId_fkey" FOREIGN KEY ("ownerId") REFERENCES "User"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "RoomMember" ADD CONSTRAINT "RoomMember_roomId_fkey" FOREIGN KEY ("roomId") REFERENCES "Room"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "RoomMember" ADD CONSTRAINT "RoomMember_userId_fkey" FOREIGN KEY ("userId") REFERENCES "User"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "ModelDownload" ADD CONSTRAINT "ModelDownload_requestedById_fkey" FOREIGN KEY ("requestedById") REFERENCES "User"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "ModelDownloadFile" ADD CONSTRAINT "ModelDownloadFile_downloadId_fkey" FOREIGN KEY ("downloadId") REFERENCES "ModelDownload"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "InferenceJob" ADD CONSTRAINT "InferenceJob_roomId_fkey" FOREIGN KEY ("roomId") REFERENCES "Room"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "InferenceJob" ADD CONSTRAINT "InferenceJob_requesterId_fkey" FOREIGN KEY ("requesterId") REFERENCES "User"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "InferenceJob" ADD CONSTRAINT "InferenceJob_serverId_fkey" FOREIGN KEY ("serverId") REFERENCES "User"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Conversation" ADD CONSTRAINT "Conversation_userId_fkey" FOREIGN KEY ("userId") REFERENCES "User"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Message" ADD CONSTRAINT "Message_conversationId_fkey" FOREIGN KEY ("conversationId") REFERENCES "Conversation"("id") ON DELETE CASCADE ON UPDATE CASCADE;

