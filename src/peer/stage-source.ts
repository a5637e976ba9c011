// Where the headless peer's pipeline stages come from: a model directory on disk (docs/pipeline.md, "Stages
// hosted by peers in a room"). Stage files listed by `stages.json` manifests (the generator's or the splitter's,
// in the directory, its `onnx/` or one level of subdirectories) load as they are; with the whole model's graph
// (`onnx/model.onnx`) any other layer range is cut by the splitter on demand and kept in the cache directory.
import { createHash } from 'node:crypto';
import { access, mkdir, readFile, readdir, stat } from 'node:fs/promises';
import { freemem } from 'node:os';
import path from 'node:path';
import { countLayers, splitModel } from './splitter/split-graph.ts';
import { graphVersion } from './splitter/graph-digest.ts';
import { readOnnx } from './splitter/onnx-file.ts';
import { STAGE_MANIFEST, type StageManifest, writeStages } from './splitter/stage-files.ts';
import { type LayerRange, PIPE_LIMITS, stageFingerprint } from '../shared/pipeline/pipe-protocol.ts';
import type { StageSource } from '../shared/pipeline/stage-server.ts';
import { StageRunner } from '../shared/pipeline/stage-runner.ts';
import { openOrtStage } from './ort-stage-session.ts';

const MIB = 1024 * 1024;

export interface FileStageSourceOptions {
  model: string;
  /** The model directory: stage manifests and/or the whole graph. */
  dir: string;
  /** Where stages cut on demand are written. */
  cacheDir: string;
  /** The whole graph, relative to `dir`, when it is not `onnx/model.onnx` (a dtype's file, e.g. model_fp16.onnx). */
  graph?: string;
  /** Names this copy of the model in the cache of cut stages (its commit); by default the whole graph's size and time. */
  version?: string;
  /**
   * The model version advertised (docs/pipeline.md#stage-fingerprints): the catalogue's fingerprint of the weights
   * (modelFingerprint) for a model from the server; by default a digest of the whole graph's files, else the
   * manifests' `source`, else a digest of the manifest's cut.
   */
  modelVersion?: string;
  threads?: number;
  /** At most this much memory (MiB) is offered to stages, whatever the machine has free. */
  memoryMb?: number;
}

const key = ([from, to]: LayerRange) => `${from}-${to}`;

async function exists(file: string): Promise<boolean> {
  return access(file).then(
    () => true,
    () => false,
  );
}

/** A manifest's cut as its identity, when nothing names the model version: its stages' layers and digests. */
const cutVersion = (stages: readonly { layers: LayerRange; sha256: string }[]) =>
  createHash('sha256')
    .update(stages.map((stage) => `${key(stage.layers)} ${stage.sha256}`).join('\n'))
    .digest('hex');

export class FileStageSource implements StageSource {
  private readonly loaded = new Map<string, Promise<StageRunner>>();
  private readonly held = new Set<string>();

  private constructor(
    private readonly options: FileStageSourceOptions,
    readonly layers: number,
    private readonly files: Map<string, string>,
    private readonly whole: string | null,
    private readonly layerMb: number,
    private readonly maxPositions: number,
    private readonly version: string,
    /** The model version its stages come from, and each stage's fingerprint (files now, cut ones once cut). */
    readonly modelVersion: string,
    private readonly fingerprints: Map<string, string>,
  ) {}

  get model(): string {
    return this.options.model;
  }

  static async create(options: FileStageSourceOptions): Promise<FileStageSource> {
    const dirs = [options.dir, path.join(options.dir, 'onnx')];
    for (const entry of await readdir(options.dir, { withFileTypes: true }).catch(() => []))
      if (entry.isDirectory())
        dirs.push(path.join(options.dir, entry.name), path.join(options.dir, entry.name, 'onnx'));
    let whole: string | null = null;
    const candidates = options.graph
      ? [path.join(options.dir, options.graph)]
      : [path.join(options.dir, 'onnx', 'model.onnx'), path.join(options.dir, 'model.onnx')];
    for (const candidate of candidates) if (!whole && (await exists(candidate))) whole = candidate;
    /** The whole graph's digest (read once, when needed): manifests that name another source hold other weights. */
    let digest: Promise<string> | null = null;
    const wholeVersion = () => (whole ? (digest ??= graphVersion(whole)) : Promise.resolve(null));
    const cuts: { source: string | undefined; stages: { layers: LayerRange; file: string; sha256: string }[] }[] = [];
    let layers = 0;
    let bytes = 0;
    for (const dir of dirs) {
      const text = await readFile(path.join(dir, STAGE_MANIFEST), 'utf8').catch(() => null);
      if (!text) continue;
      const manifest = JSON.parse(text) as StageManifest;
      if (manifest.format !== 'mesh-nanollm-stages') continue;
      if (whole && manifest.source && manifest.source !== (await wholeVersion())) continue;
      layers ||= manifest.layers;
      if (manifest.layers !== layers)
        throw new Error(`${dir}: a stage manifest of another model (${manifest.layers} layers)`);
      const stages: (typeof cuts)[number]['stages'] = [];
      for (const stage of manifest.stages) {
        const file = path.join(dir, stage.file);
        const sha256 = await graphVersion(file);
        if (stage.sha256 && stage.sha256 !== sha256)
          throw new Error(`${file} is not the stage its manifest names (sha256 ${sha256}, not ${stage.sha256})`);
        stages.push({ layers: stage.layers, file, sha256 });
        bytes = Math.max(
          bytes,
          ((await stat(file)).size + (stage.data ? (await stat(`${file}_data`)).size : 0)) /
            (stage.layers[1] - stage.layers[0]),
        );
      }
      cuts.push({ source: manifest.source, stages });
    }
    const modelVersion =
      options.modelVersion ??
      (await wholeVersion()) ??
      cuts.find((cut) => cut.source)?.source ??
      (cuts[0] ? cutVersion(cuts[0].stages) : '');
    // Without a whole graph, one model version's stages: manifests of another source, or other cuts when no
    // manifest names its source, are not this peer's.
    const files = new Map<string, string>();
    const fingerprints = new Map<string, string>();
    for (const cut of cuts) {
      if (!whole && (cut.source ?? cutVersion(cut.stages)) !== modelVersion) continue;
      for (const stage of cut.stages) {
        files.set(key(stage.layers), stage.file);
        fingerprints.set(key(stage.layers), await stageFingerprint(modelVersion, stage.layers, [stage.sha256]));
      }
    }
    if (whole && !layers) {
      layers = countLayers((await readOnnx(whole)).graph ?? {});
      bytes = (await stat(whole)).size / Math.max(1, layers);
    }
    if (!layers)
      throw new Error(
        `${options.dir} has no stage manifest (${STAGE_MANIFEST}) and no ${options.graph ?? 'onnx/model.onnx'}`,
      );
    const config = await readFile(path.join(options.dir, 'config.json'), 'utf8')
      .then((text) => JSON.parse(text) as { max_position_embeddings?: number })
      .catch(() => ({}) as { max_position_embeddings?: number });
    // Stages cut from another copy of the model (a newer commit, an edited file) are not this one's.
    let version = options.version ?? 'manifests';
    if (!options.version && whole) {
      const file = await stat(whole);
      version = `${file.size}-${Math.floor(file.mtimeMs)}`;
    }
    return new FileStageSource(
      options,
      layers,
      files,
      whole,
      bytes / MIB,
      config.max_position_embeddings ?? Infinity,
      version,
      modelVersion,
      fingerprints,
    );
  }

  describe() {
    const free = Math.floor(freemem() / MIB);
    return {
      model: this.model,
      layers: this.layers,
      holds: [...this.held].slice(0, PIPE_LIMITS.stagesHeld).map((k) => k.split('-').map(Number) as LayerRange),
      loadable: [...this.files.keys()]
        .slice(0, PIPE_LIMITS.stagesLoadable)
        .map((k) => k.split('-').map(Number) as LayerRange),
      anyRange: this.whole !== null,
      layerMb: this.layerMb,
      freeMemoryMb: Math.min(free, this.options.memoryMb ?? free),
      version: this.modelVersion,
      fingerprints: [...this.fingerprints]
        .slice(0, PIPE_LIMITS.stagesHeld + PIPE_LIMITS.stagesLoadable)
        .map(([k, sha256]) => ({ layers: k.split('-').map(Number) as LayerRange, sha256 })),
    };
  }

  /** True when `layers` can be loaded here. */
  can(layers: LayerRange): boolean {
    return this.files.has(key(layers)) || (this.whole !== null && layers[1] <= this.layers);
  }

  open(layers: LayerRange): Promise<StageRunner> {
    const k = key(layers);
    let runner = this.loaded.get(k);
    if (!runner) {
      // Each stage loaded stays in memory for later jobs: a requester asking for range after range cannot fill it.
      if (this.loaded.size >= PIPE_LIMITS.stagesHeld)
        return Promise.reject(new Error(`This peer cannot load more stages (no stage: it holds ${this.loaded.size})`));
      runner = this.load(layers).then((loaded) => {
        this.held.add(k);
        return loaded;
      });
      this.loaded.set(k, runner);
      runner.catch(() => this.loaded.delete(k));
    }
    return runner;
  }

  private async load(layers: LayerRange): Promise<StageRunner> {
    if (!this.can(layers)) throw new Error(`This peer cannot load layers ${key(layers)} of ${this.model} (no stage)`);
    const file = this.files.get(key(layers)) ?? (await this.cut(layers));
    const session = await openOrtStage(file, this.options.threads ? { threads: this.options.threads } : {});
    return new StageRunner(session, { maxPositions: this.maxPositions });
  }

  /** Cuts `layers` out of the whole graph with the splitter, into the cache (reused on later runs). */
  private async cut(layers: LayerRange): Promise<string> {
    const out = path.join(this.options.cacheDir, 'stages', this.model, this.version, key(layers));
    const cached = await readFile(path.join(out, STAGE_MANIFEST), 'utf8')
      .then((text) => JSON.parse(text) as StageManifest)
      .catch(() => null);
    let file: string;
    if (cached?.stages[0]) file = path.join(out, cached.stages[0].file);
    else {
      const boundaries = layers.filter((b) => b > 0 && b < this.layers);
      const stages = splitModel(await readOnnx(this.whole!), { boundaries });
      const stage = stages.find((s) => s.layers[0] === layers[0] && s.layers[1] === layers[1]);
      if (!stage) throw new Error(`The splitter gave no stage of layers ${key(layers)}`);
      await mkdir(out, { recursive: true });
      const manifest = await writeStages(out, [{ ...stage, index: 0 }]);
      file = path.join(out, manifest.stages[0]!.file);
    }
    if (!this.fingerprints.has(key(layers)))
      this.fingerprints.set(key(layers), await stageFingerprint(this.modelVersion, layers, [await graphVersion(file)]));
    return file;
  }
}
