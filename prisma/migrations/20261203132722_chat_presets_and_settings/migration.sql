-- AlterTable
ALTER TABLE "Conversation" ADD COLUMN     "settings" JSONB;

-- CreateTable
CREATE TABLE "ChatPreset" (
    "id" UUID NOT NULL,
    "userId" UUID NOT NULL,
    "name" VARCHAR(60) NOT NULL,
    "settings" JSONB NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "ChatPreset_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "ChatPreset_userId_name_key" ON "ChatPreset"("userId", "name");

-- AddForeignKey
ALTER TABLE "ChatPreset" ADD CONSTRAINT "ChatPreset_userId_fkey" FOREIGN KEY ("userId") REFERENCES "User"("id") ON DELETE CASCADE ON UPDATE CASCADE;
