// Files of a run, written so that a kill at any moment loses nothing complete:
// whole files are written to a temporary name, fsynced and renamed; jsonl lines are
// appended and fsynced; a checkpoint is a folder built under a temporary name and
// renamed into place, and only then named by checkpoints/latest.json.
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ScoreError } from '../model/errors.js';

function syncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    /* not every file system lets a folder be synced */
  }
}

export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, path);
  syncDir(dirname(path));
}

export const writeJsonAtomic = (path: string, v: unknown) => writeFileAtomic(path, JSON.stringify(v, null, 2) + '\n');

export function appendJsonl(path: string, v: unknown): void {
  const fd = openSync(path, 'a');
  try {
    writeSync(fd, JSON.stringify(v) + '\n');
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Complete lines of a jsonl file; a torn last line (a kill mid-append) is dropped. */
export function readJsonl<T>(path: string): T[] {
  if (!existsSync(path)) return [];
  const out: T[] = [];
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    try {
      out.push(JSON.parse(line) as T);
    } catch {
      break;
    }
  }
  return out;
}

/** Rewrites a jsonl file keeping the records that pass `keep` (used on resume: lines written
 * after the checkpoint belong to steps that will run again). */
export function truncateJsonl<T>(path: string, keep: (v: T) => boolean): T[] {
  const kept = readJsonl<T>(path).filter(keep);
  if (existsSync(path)) writeFileAtomic(path, kept.map((v) => JSON.stringify(v) + '\n').join(''));
  return kept;
}

// ---- optimizer state as safetensors (F32 m and v, step in the metadata) ----

export function encodeOptimizerState(s: { m: Float32Array; v: Float32Array; step: number }): Buffer {
  const bytes = s.m.byteLength;
  const header = {
    __metadata__: { format: 'score-rl adamw', step: String(s.step) },
    m: { dtype: 'F32', shape: [s.m.length], data_offsets: [0, bytes] },
    v: { dtype: 'F32', shape: [s.v.length], data_offsets: [bytes, 2 * bytes] },
  };
  let h = Buffer.from(JSON.stringify(header), 'utf8');
  h = Buffer.concat([h, Buffer.alloc((8 - (h.length % 8)) % 8, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  return Buffer.concat([len, h, Buffer.from(s.m.buffer, s.m.byteOffset, bytes), Buffer.from(s.v.buffer, s.v.byteOffset, bytes)]);
}

export function decodeOptimizerState(buf: Buffer, file: string): { m: Float32Array; v: Float32Array; step: number } {
  const bad = (why: string) => new ScoreError('ERR_SCORE_FORMAT', `${file}: ${why}`);
  if (buf.length < 8) throw bad('too short for a safetensors file');
  const n = Number(buf.readBigUInt64LE(0));
  if (n > buf.length - 8) throw bad('header length exceeds the file');
  let h: Record<string, { dtype?: string; shape?: number[]; data_offsets?: [number, number] }> & { __metadata__?: { step?: string } };
  try {
    h = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  } catch {
    throw bad('header is not JSON');
  }
  const step = Number(h.__metadata__?.step);
  if (!Number.isInteger(step) || step < 0) throw bad("metadata 'step' is missing or not an integer");
  const take = (name: 'm' | 'v') => {
    const t = h[name];
    if (!t || t.dtype !== 'F32' || !Array.isArray(t.data_offsets)) throw bad(`tensor '${name}' is missing or not F32`);
    const [a, b] = t.data_offsets;
    if (!(a >= 0 && b >= a && 8 + n + b <= buf.length && (b - a) % 4 === 0)) throw bad(`tensor '${name}' has bad offsets`);
    const copy = Buffer.from(buf.subarray(8 + n + a, 8 + n + b)); // aligned copy
    return new Float32Array(copy.buffer, copy.byteOffset, copy.byteLength / 4);
  };
  return { m: take('m'), v: take('v'), step };
}

export function ensureDir(dir: string): void {
  mkdirSync(dir, { recursive: true });
}

export { join };
