// score-rl inspect: what this build has and what this machine offers: the package
// version, the CPU features the native kernels dispatch on, the OpenMP thread count,
// whether the CUDA backend library sits next to the addon, and whether a CUDA device
// could be opened (by creating a tiny model on it; the error says what is missing).
import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { createRequire } from 'node:module';
import { addon, cudaLibraryPath, packageRoot } from '../native/addon.js';
import { initModel } from '../model/model.js';
import { helpText, parseArgs, type FlagSpec } from './args.js';

const SPEC: FlagSpec = {
  json: { type: 'boolean', help: 'print one JSON object instead of lines' },
  help: { type: 'boolean', help: 'show this help' },
};

// The native core selects AVX2/FMA and AVX-512 code paths at run time (target_clones).
function cpuFeatures(): string[] {
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    const flags = new Set((/^flags\s*:\s*(.*)$/m.exec(info)?.[1] ?? '').split(/\s+/));
    return ['avx2', 'fma', 'avx512f', 'avx512bw', 'avx512vl'].filter((f) => flags.has(f));
  } catch {
    return [];  // not Linux: the portable paths are used
  }
}

// The OpenMP runtime's default is one thread per logical CPU unless OMP_NUM_THREADS says otherwise.
function ompThreads(): number {
  const env = Number.parseInt(process.env.OMP_NUM_THREADS ?? '', 10);
  return Number.isInteger(env) && env > 0 ? env : availableParallelism();
}

async function probeCuda(): Promise<{ ok: boolean; detail: string }> {
  const tiny = { model_type: 'gpt2', vocab_size: 16, n_layer: 1, n_embd: 8, n_head: 2, n_positions: 8 };
  try {
    const card = await addon().describeCuda({ device: 'cuda', cudaLibrary: cudaLibraryPath() });
    const m = await initModel(tiny, { device: 'cuda', seed: 0 });
    m.dispose();
    return { ok: true, detail: `${card.ok ? card.text : 'device 0'}: a model was created on it` };
  } catch (e) {
    const err = e as Error & { code?: string };
    return { ok: false, detail: `${err.code ?? 'error'}: ${err.message}` };
  }
}

export async function run(args: string[]): Promise<number> {
  const { flags } = parseArgs(args, SPEC);
  if (flags.help) {
    console.log(helpText('score-rl inspect [--json]', SPEC));
    return 0;
  }
  const version = (createRequire(import.meta.url)('../../package.json') as { version: string }).version;
  const lib = cudaLibraryPath();
  const libFound = existsSync(lib);
  const cuda = libFound ? await probeCuda() : { ok: false, detail: 'not probed (no CUDA backend library)' };
  const report = {
    version,
    packageRoot,
    cpuFeatures: cpuFeatures(),
    ompThreads: ompThreads(),
    cudaLibrary: libFound ? lib : null,
    cudaDevice: cuda,
  };
  if (flags.json) {
    console.log(JSON.stringify(report, null, 2));
    return 0;
  }
  console.log(`score-rl ${version}`);
  console.log(`cpu features:  ${report.cpuFeatures.join(' ') || '(none of avx2/fma/avx512: portable kernels)'}`);
  console.log(`omp threads:   ${report.ompThreads}`);
  console.log(`cuda library:  ${libFound ? lib : `not found (looked for ${lib})`}`);
  console.log(`cuda device:   ${cuda.ok ? 'ok, ' : 'unavailable, '}${cuda.detail}`);
  return 0;
}
