// Download speed over the last ~3 s, from per-quarter-second buckets: cheap enough for the per-chunk hot path.
const BUCKET_MS = 250;
const BUCKETS = 12;

export class SpeedMeter {
  private readonly samples: [bucket: number, bytes: number][] = [];
  private speed = 0;

  constructor(private readonly now: () => number = Date.now) {}

  /** Counts `bytes` now; returns bytes per second, recomputed when a new bucket starts. */
  add(bytes: number): number {
    const bucket = Math.floor(this.now() / BUCKET_MS);
    const last = this.samples[this.samples.length - 1];
    if (last && last[0] === bucket) {
      last[1] += bytes;
      return this.speed;
    }
    this.samples.push([bucket, bytes]);
    while ((this.samples[0]?.[0] ?? bucket) <= bucket - BUCKETS) this.samples.shift();
    const seconds = Math.max(0.5, ((bucket - (this.samples[0]?.[0] ?? bucket)) * BUCKET_MS) / 1000);
    this.speed = Math.round(this.samples.reduce((sum, [, n]) => sum + n, 0) / seconds);
    return this.speed;
  }
}
