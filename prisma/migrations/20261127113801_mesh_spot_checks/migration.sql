-- AlterTable
ALTER TABLE "InferenceJob" ADD COLUMN     "checkResult" VARCHAR(16);

-- CreateTable
CREATE TABLE "PeerMismatch" (
    "id" UUID NOT NULL,
    "roomId" UUID,
    "jobId" UUID,
    "reporterId" UUID NOT NULL,
    "peerUserId" UUID,
    "peerName" VARCHAR(64) NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "PeerMismatch_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "PeerMismatch_roomId_createdAt_idx" ON "PeerMismatch"("roomId", "createdAt");

-- CreateIndex
CREATE INDEX "PeerMismatch_peerUserId_createdAt_idx" ON "PeerMismatch"("peerUserId", "createdAt");

-- AddForeignKey
ALTER TABLE "PeerMismatch" ADD CONSTRAINT "PeerMismatch_roomId_fkey" FOREIGN KEY ("roomId") REFERENCES "Room"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "PeerMismatch" ADD CONSTRAINT "PeerMismatch_jobId_fkey" FOREIGN KEY ("jobId") REFERENCES "InferenceJob"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "PeerMismatch" ADD CONSTRAINT "PeerMismatch_reporterId_fkey" FOREIGN KEY ("reporterId") REFERENCES "User"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "PeerMismatch" ADD CONSTRAINT "PeerMismatch_peerUserId_fkey" FOREIGN KEY ("peerUserId") REFERENCES "User"("id") ON DELETE SET NULL ON UPDATE CASCADE;
