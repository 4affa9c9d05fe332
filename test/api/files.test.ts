// Bad checkpoint files through loadModel: each is a rejected Promise with a
// typed code and a one-line message naming the file and the field or tensor.
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadModel } from '../../lib/index.js';
import { buildSafetensors, readSafetensors } from '../helpers/safetensors.js';

const fixtures = path.resolve(__dirname, '..', 'fixtures', 'models');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'score-files-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;

/** A copy of the gpt2-tiny fixture with config.json and/or model.safetensors replaced. */
function variant(opts: { config?: unknown; configText?: string; model?: Buffer }): string {
  const dir = path.join(tmp, `v${n++}`);
  mkdirSync(dir);
  const src = path.join(fixtures, 'gpt2-tiny');
  if (opts.configText !== undefined) writeFileSync(path.join(dir, 'config.json'), opts.configText);
  else if (opts.config !== undefined) writeFileSync(path.join(dir, 'config.json'), JSON.stringify(opts.config));
  else copyFileSync(path.join(src, 'config.json'), path.join(dir, 'config.json'));
  if (opts.model) writeFileSync(path.join(dir, 'model.safetensors'), opts.model);
  else copyFileSync(path.join(src, 'model.safetensors'), path.join(dir, 'model.safetensors'));
  return dir;
}

const baseConfig = JSON.parse(readFileSync(path.join(fixtures, 'gpt2-tiny', 'config.json'), 'utf8')) as Record<string, unknown>;
const tensors = readSafetensors(path.join(fixtures, 'gpt2-tiny', 'model.safetensors'));

/** Rebuilds the fixture's safetensors with a header edit applied. */
function rebuilt(
  edit: (h: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>) => void,
  drop: string[] = [],
  add: Record<string, (typeof tensors)[string]> = {},
): Buffer {
  const header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }> = {};
  const chunks: Buffer[] = [];
  let off = 0;
  for (const [name, t] of Object.entries({ ...tensors, ...add })) {
    if (drop.includes(name)) continue;
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + t.data.length] };
    chunks.push(t.data);
    off += t.data.length;
  }
  edit(header);
  return buildSafetensors(header, Buffer.concat(chunks));
}

async function rejects(dir: string, code: string, ...needles: string[]) {
  const err = await loadModel(dir).then(
    () => null,
    (e: unknown) => e as { code: string; message: string },
  );
  expect(err, 'loadModel should reject').not.toBeNull();
  expect(err!.code).toBe(code);
  expect(err!.message).not.toContain('\n');
  for (const s of needles) expect(err!.message).toContain(s);
}

describe('corrupt safetensors', () => {
  const good = readFileSync(path.join(fixtures, 'gpt2-tiny', 'model.safetensors'));
  it('truncated data', () => rejects(variant({ model: good.subarray(0, good.length - 100) }), 'ERR_SCORE_BAD_FILE', 'model.safetensors', 'data_offsets'));
  it('shorter than the length prefix', () => rejects(variant({ model: good.subarray(0, 5) }), 'ERR_SCORE_BAD_FILE', 'model.safetensors', 'header'));
  it('header length past the end', () => {
    const b = Buffer.from(good);
    b.writeBigUInt64LE(BigInt(good.length * 2), 0);
    return rejects(variant({ model: b }), 'ERR_SCORE_BAD_FILE', 'model.safetensors: header: length');
  });
  it('non-UTF-8 header', () => rejects(variant({ model: buildSafetensors(null, Buffer.alloc(0), Buffer.concat([Buffer.from('{"'), Buffer.from([0xff, 0xfe]), Buffer.from('":{}}')])) }), 'ERR_SCORE_BAD_FILE', 'model.safetensors: header', 'UTF-8'));
  it('offsets outside the data', () => rejects(variant({ model: rebuilt((h) => (h['wte.weight']!.data_offsets[1] += 1 << 20)) }), 'ERR_SCORE_BAD_FILE', 'model.safetensors', "'wte.weight'", 'data_offsets'));
  it('overlapping tensors', () => rejects(variant({ model: rebuilt((h) => (h['h.0.ln_1.bias']!.data_offsets = [...h['h.0.ln_1.weight']!.data_offsets] as [number, number])) }), 'ERR_SCORE_BAD_FILE', 'model.safetensors', 'overlap', 'h.0.ln_1.bias', 'h.0.ln_1.weight'));
  it('unknown dtype', () => rejects(variant({ model: rebuilt((h) => (h['ln_f.bias']!.dtype = 'F17')) }), 'ERR_SCORE_BAD_FILE', 'model.safetensors', "'ln_f.bias'", 'F17'));
  it('shape and byte count disagree', () => rejects(variant({ model: rebuilt((h) => (h['ln_f.bias']!.shape = [33])) }), 'ERR_SCORE_BAD_FILE', 'model.safetensors', "'ln_f.bias'", 'shape [33]'));
  it('missing tensor', () => rejects(variant({ model: rebuilt(() => {}, ['h.1.mlp.c_fc.weight']) }), 'ERR_SCORE_NOT_FOUND', 'model.safetensors', "missing tensor 'h.1.mlp.c_fc.weight'"));
  it('extra tensor', () => rejects(variant({ model: rebuilt(() => {}, [], { 'h.7.extra.weight': tensors['ln_f.bias']! }) }), 'ERR_SCORE_BAD_FILE', 'model.safetensors', "unexpected tensor 'h.7.extra.weight'"));
  it('missing file', () => rejects(path.join(tmp, 'nope'), 'ERR_SCORE_NOT_FOUND', 'config.json'));
});

describe('bad config.json', () => {
  it('invalid JSON', () => rejects(variant({ configText: '{"model_type": "gpt2",' }), 'ERR_SCORE_BAD_FILE', 'config.json'));
  it('missing field', () => {
    const { n_head: _, ...rest } = baseConfig;
    return rejects(variant({ config: rest }), 'ERR_SCORE_INVALID_ARGUMENT', 'config.json', 'n_head');
  });
  it('hidden size not divisible by heads', () => rejects(variant({ config: { ...baseConfig, n_head: 5 } }), 'ERR_SCORE_INVALID_ARGUMENT', 'config.json', "'n_embd' (32) is not divisible by 'n_head' (5)"));
  it('unknown model_type', () => rejects(variant({ config: { ...baseConfig, model_type: 'mamba' } }), 'ERR_SCORE_UNSUPPORTED', 'config.json', "model_type 'mamba'"));
  it('ill-typed field', () => rejects(variant({ config: { ...baseConfig, n_layer: 'two' } }), 'ERR_SCORE_INVALID_ARGUMENT', 'config.json', "field 'n_layer'"));
  it('config and weights disagree in shape', () => rejects(variant({ config: { ...baseConfig, n_embd: 64, n_head: 4 } }), 'ERR_SCORE_BAD_FILE', 'model.safetensors', 'has shape', 'expected', 'from config.json'));
});
