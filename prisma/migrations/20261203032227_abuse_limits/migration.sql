-- AlterTable
ALTER TABLE "Room" ADD COLUMN     "lastActiveAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP;

-- CreateTable
CREATE TABLE "InferenceJobPeer" (
    "jobId" UUID NOT NULL,
    "peerId" VARCHAR(64) NOT NULL,
    "userId" UUID NOT NULL,
    "displayName" VARCHAR(64) NOT NULL,
    "role" VARCHAR(16) NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "InferenceJobPeer_pkey" PRIMARY KEY ("jobId","peerId")
);

-- CreateTable
CREATE TABLE "TokenUsage" (
    "scope" VARCHAR(64) NOT NULL,
    "day" DATE NOT NULL,
    "tokens" INTEGER NOT NULL DEFAULT 0,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "TokenUsage_pkey" PRIMARY KEY ("scope","day")
);

-- CreateIndex
CREATE INDEX "InferenceJobPeer_userId_idx" ON "InferenceJobPeer"("userId");

-- CreateIndex
CREATE INDEX "Room_lastActiveAt_idx" ON "Room"("lastActiveAt");

-- AddForeignKey
ALTER TABLE "InferenceJobPeer" ADD CONSTRAINT "InferenceJobPeer_jobId_fkey" FOREIGN KEY ("jobId") REFERENCES "InferenceJob"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "InferenceJobPeer" ADD CONSTRAINT "InferenceJobPeer_userId_fkey" FOREIGN KEY ("userId") REFERENCES "User"("id") ON DELETE CASCADE ON UPDATE CASCADE;
