-- DropIndex
DROP INDEX "ModelDownload_modelId_key";

-- AlterTable
ALTER TABLE "ModelDownload" ADD COLUMN     "dtype" VARCHAR(16) NOT NULL DEFAULT '*';

-- CreateTable
CREATE TABLE "UserModel" (
    "id" UUID NOT NULL,
    "modelId" VARCHAR(128) NOT NULL,
    "addedById" UUID NOT NULL,
    "forEveryone" BOOLEAN NOT NULL DEFAULT false,
    "repo" VARCHAR(128) NOT NULL,
    "revision" VARCHAR(64) NOT NULL,
    "checkedCommit" CHAR(40) NOT NULL,
    "name" VARCHAR(96) NOT NULL,
    "license" VARCHAR(64) NOT NULL,
    "modelType" VARCHAR(64) NOT NULL,
    "dtypeWebgpu" VARCHAR(16) NOT NULL,
    "dtypeWasm" VARCHAR(16) NOT NULL,
    "contextLength" INTEGER NOT NULL,
    "sizes" JSONB NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "UserModel_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "UserModel_forEveryone_idx" ON "UserModel"("forEveryone");

-- CreateIndex
CREATE INDEX "UserModel_modelId_idx" ON "UserModel"("modelId");

-- CreateIndex
CREATE UNIQUE INDEX "UserModel_addedById_modelId_key" ON "UserModel"("addedById", "modelId");

-- CreateIndex
CREATE UNIQUE INDEX "ModelDownload_modelId_dtype_key" ON "ModelDownload"("modelId", "dtype");

-- AddForeignKey
ALTER TABLE "UserModel" ADD CONSTRAINT "UserModel_addedById_fkey" FOREIGN KEY ("addedById") REFERENCES "User"("id") ON DELETE CASCADE ON UPDATE CASCADE;
