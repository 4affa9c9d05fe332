// A tiny safetensors reader/writer for the tests (golden values, hand-made bad files).
// Deliberately separate from the native reader under test.
import { readFileSync } from 'node:fs';

export interface StTensor {
  dtype: string;
  shape: number[];
  data: Buffer;
}

export function readSafetensors(path: string): Record<string, StTensor> {
  const buf = readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const out: Record<string, StTensor> = {};
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    out[name] = { dtype: t.dtype, shape: t.shape, data: buf.subarray(8 + n + t.data_offsets[0], 8 + n + t.data_offsets[1]) };
  }
  return out;
}

export function f64(t: StTensor): Float64Array {
  if (t.dtype !== 'F64') throw new Error(`expected F64, got ${t.dtype}`);
  return new Float64Array(t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + t.data.byteLength));
}

export function i32(t: StTensor): Int32Array {
  if (t.dtype !== 'I32') throw new Error(`expected I32, got ${t.dtype}`);
  return new Int32Array(t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + t.data.byteLength));
}

/** Bytes of a safetensors file from a header object and a data blob (no validation: for bad files too). */
export function buildSafetensors(header: unknown, data: Buffer, headerText?: Buffer): Buffer {
  let h = headerText ?? Buffer.from(JSON.stringify(header), 'utf8');
  const pad = (8 - (h.length % 8)) % 8;
  h = Buffer.concat([h, Buffer.alloc(pad, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  return Buffer.concat([len, h, data]);
}
