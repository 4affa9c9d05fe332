// score-rl init --arch gpt2|llama|qwen2 --preset tiny|small|gpt2 --out DIR [--seed N]
import { existsSync, readdirSync } from 'node:fs';
import { initModel } from '../model/model.js';
import { ARCHS, PRESETS, type Arch } from '../model/presets.js';
import { CliError, helpText, parseArgs, requireFlag, type FlagSpec } from './args.js';

const SPEC: FlagSpec = {
  arch: { type: 'string', help: `architecture: ${ARCHS.join(' | ')}`, default: 'gpt2' },
  preset: { type: 'string', help: `size: ${Object.keys(PRESETS).join(' | ')}`, default: 'tiny' },
  out: { type: 'string', help: 'output folder (config.json + model.safetensors)' },
  seed: { type: 'number', help: 'random seed', default: 0 },
  force: { type: 'boolean', help: 'write into a folder that is not empty' },
  json: { type: 'boolean', help: 'print a JSON summary' },
  help: { type: 'boolean', help: 'show this help' },
};

export async function run(args: string[]): Promise<number> {
  const { flags } = parseArgs(args, SPEC);
  if (flags.help) {
    console.log(helpText('usage: score-rl init --arch gpt2|llama|qwen2 --preset NAME --out DIR [--seed N]', SPEC));
    return 0;
  }
  const arch = String(flags.arch) as Arch;
  if (!ARCHS.includes(arch)) throw new CliError(`--arch: '${arch}' is not one of ${ARCHS.join(', ')}`);
  const preset = String(flags.preset);
  if (!(preset in PRESETS)) throw new CliError(`--preset: '${preset}' is not one of ${Object.keys(PRESETS).join(', ')}`);
  const out = requireFlag(flags, 'out');
  const seed = flags.seed as number;
  if (!Number.isInteger(seed) || seed < 0) throw new CliError(`--seed: '${seed}' is not a non-negative integer`);
  if (existsSync(out) && readdirSync(out).length > 0 && !flags.force)
    throw new CliError(`--out: '${out}' exists and is not empty (use --force to overwrite its model files)`);
  const model = await initModel({ arch, preset }, { seed });
  await model.save(out);
  const summary = { out, arch, preset, seed, params: model.numParams };
  model.dispose();
  if (flags.json) console.log(JSON.stringify(summary));
  else console.log(`wrote ${out}: ${arch} preset '${preset}', ${(summary.params / 1e6).toFixed(2)}M parameters, seed ${seed}`);
  return 0;
}
