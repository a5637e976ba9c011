// The order in which Vitest starts the test files: the longest first, so that the run does not end with one long
// file running alone on one core while the other has nothing left to do. Vitest orders by the durations of the last
// run when its cache has them (a checkout that has run the suite before); a fresh checkout (CI) has none, and
// Vitest would then start the largest files first, by bytes, which says little about how long they take.
import path from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * About how many seconds each of the longest files takes in a full run on two busy cores (CI). Only the order
 * matters: keep the longest ones here, roughly right, when a file grows or shrinks a lot.
 */
export const LONG_FILES: Readonly<Record<string, number>> = {
  // The two halves of what was one 600 s file, run side by side: every case on WASM, the three that depend on the
  // backend on WebGPU (449 s and 361 s, each alone, at a load average of about 25 on 2026-12-04; here scaled down).
  'tests/e2e/offline-wasm.test.ts': 250,
  'tests/e2e/screens.test.ts': 240,
  'tests/downloads.test.ts': 170,
  'tests/e2e/offline-webgpu.test.ts': 200,
  'tests/e2e/pipeline-browser.test.ts': 160,
  'tests/e2e/export-shapes.test.ts': 120,
  'tests/e2e/engine.test.ts': 110,
};

export default class LongestFirstSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const root = this.ctx.config.root;
    const seconds = (file: TestSpecification): number => {
      const relative = path.relative(root, file.moduleId).split(path.sep).join('/');
      const last = this.ctx.cache.getFileTestResults(`${file.project.name}:${relative}`);
      return last ? last.duration / 1000 : (LONG_FILES[relative] ?? -1);
    };
    // Stable: files with no known duration keep Vitest's order, after the known ones.
    return sorted
      .map((file) => ({ file, seconds: seconds(file) }))
      .sort((a, b) => b.seconds - a.seconds)
      .map(({ file }) => file);
  }
}
