// Builds the native addon at `npm install`. CMake (through cmake-js) is the
// primary build; without cmake, node-gyp builds the CPU-only addon from
// binding.gyp (same sources). Output: build/Release/score_addon.node.
//   SCORE_CUDA=auto|on|off  passed to CMake (default auto: CUDA when nvcc is found)
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);

function run(cmd, args) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.error) throw r.error;
  return r.status ?? 1;
}

const hasCmake = spawnSync('cmake', ['--version'], { stdio: 'ignore' }).status === 0;
let status;
if (hasCmake && process.env.SCORE_BUILD !== 'gyp') {
  const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
  const cuda = process.env.SCORE_CUDA || 'auto';
  if (!['auto', 'on', 'off'].includes(cuda)) {
    console.error(`score-rl: SCORE_CUDA must be auto, on or off (got '${cuda}')`);
    process.exit(1);
  }
  const jobs = process.env.CMAKE_BUILD_PARALLEL_LEVEL ?? '2';
  status = run(process.execPath, [cmakeJs, 'compile', '--log-level', 'warn', `--CDSCORE_CUDA=${cuda}`, '--parallel', jobs]);
} else {
  const why = hasCmake ? 'SCORE_BUILD=gyp' : 'cmake not found';
  console.log(`score-rl: ${why}: building the CPU-only addon with node-gyp (binding.gyp)`);
  const nodeGyp = require.resolve('node-gyp/bin/node-gyp.js');
  // Build against the headers of the running Node when they are installed beside it
  // (Debian's nodejs, official tarballs), so node-gyp does not try to download them.
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  const args = [nodeGyp, 'rebuild', '--jobs', '2'];
  if (!process.env.npm_config_nodedir && existsSync(path.join(prefix, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${prefix}`);
  status = run(process.execPath, args);
}
process.exit(status);
