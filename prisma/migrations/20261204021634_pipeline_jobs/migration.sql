-- AlterTable
ALTER TABLE "InferenceJob" ADD COLUMN     "stages" INTEGER;

-- AlterTable
ALTER TABLE "InferenceJobPeer" ADD COLUMN     "layerFrom" INTEGER,
ADD COLUMN     "layerTo" INTEGER;
