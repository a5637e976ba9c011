// A V8 CPU profile of the process that imports it (node --import ./bench/cpu-profile.mjs), written into
// BENCH_CPU_PROF_DIR as it exits: Node 20 refuses --cpu-prof in NODE_OPTIONS, which is how bench/openai-api.ts
// reaches the server process it starts (BENCH_SERVER_CPU_PROF).
import { Session } from 'node:inspector';
import { writeFileSync } from 'node:fs';
import path from 'node:path';

const dir = process.env.BENCH_CPU_PROF_DIR;
if (dir) {
  const session = new Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.start');
  // The in-process session answers synchronously, so the profile is written before the process is gone.
  process.once('exit', () => {
    session.post('Profiler.stop', (error, result) => {
      if (!error) writeFileSync(path.join(dir, `server-${process.pid}.cpuprofile`), JSON.stringify(result.profile));
    });
  });
}
