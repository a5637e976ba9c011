// npx tsx scripts/pipeline/split.ts --model DIR/onnx/model.onnx (--stages N | --boundaries 2,4)
//                                   [--out DIR/onnx] [--external-data] [--cut LAYER=TENSOR ...]
// Cuts a whole-model ONNX export (weights inline or external) at the residual stream between layers into stage
// graphs with their own weights, and writes them with a stages.json manifest (docs/pipeline.md). The splitter itself
// lives in src/peer/splitter/ (the headless peer cuts stages with it too).
import path from 'node:path';
import { parseArgs } from 'node:util';
import { graphVersion } from '../../src/peer/splitter/graph-digest.ts';
import { readOnnx } from '../../src/peer/splitter/onnx-file.ts';
import { countLayers, evenBoundaries, splitModel } from '../../src/peer/splitter/split-graph.ts';
import { writeStages } from '../../src/peer/splitter/stage-files.ts';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    stages: { type: 'string' },
    boundaries: { type: 'string' },
    out: { type: 'string' },
    'external-data': { type: 'boolean', default: false },
    cut: { type: 'string', multiple: true, default: [] },
  },
});
if (!values.model || (!values.stages && !values.boundaries)) {
  console.error('Usage: tsx scripts/pipeline/split.ts --model FILE.onnx (--stages N | --boundaries 2,4) [--out DIR]');
  process.exit(2);
}
const model = await readOnnx(values.model);
const layers = countLayers(model.graph ?? {});
const boundaries = values.boundaries
  ? values.boundaries.split(',').map(Number)
  : evenBoundaries(layers, Number(values.stages));
const cuts = Object.fromEntries(
  values.cut.map((spec) => {
    const [layer, tensor] = spec.split('=');
    return [Number(layer), tensor ?? ''];
  }),
);
const stages = splitModel(model, { boundaries, cuts });
const out = values.out ?? path.dirname(values.model);
// The manifest names the graph its stages were cut from, so peers tell them from stages of other weights.
const manifest = await writeStages(out, stages, {
  externalData: values['external-data'],
  source: await graphVersion(values.model),
});
for (const stage of manifest.stages)
  console.log(`${path.join(out, stage.file)}: layers ${stage.layers[0]}..${stage.layers[1] - 1}`);
