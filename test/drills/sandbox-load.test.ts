// Drill: the code sandbox under load. 1,000 programs of mixed honest and hostile
// kinds go through one SandboxPool (two slots), in a fixed shuffled order. Every
// verdict must be right (honest programs pass, wrong ones fail, hostile ones are
// contained with the expected reason), and afterwards nothing is left: no process
// of the pool's uids or of this process's children, no file in the shared writable
// folders (owned by a sandbox uid or named by the drill's tag), no extra file
// descriptor in this Node process (/proc/self/fd counted before and after).
// Mostly fast programs; the few that run into the wall clock get a short timeoutMs.
// SANDBOX_LOAD_N changes the count (default 1000).
import { existsSync, lstatSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SandboxPool, detectIsolation, type RunResult } from '../../lib/tasks/code/index.js';

const N = Number(process.env.SANDBOX_LOAD_N ?? 1000);
const isolation = detectIsolation();
const isolated = isolation !== 'none';
const tag = `score-rl-load-${process.pid}-${Date.now()}`;
const SECRET = `load-secret-${Date.now()}`;
// Short limits keep the drill bounded: output and file limits are hit in milliseconds.
const pool = new SandboxPool({
  concurrency: 2,
  limits: { timeoutMs: 5000, cpuSeconds: 2, memoryBytes: 128 << 20, fileBytes: 1 << 20, outputKillBytes: 1 << 20 },
});
const SHORT = { timeoutMs: 700, cpuSeconds: 1 };

let server: Server;
let port = 0;
let connections = 0;

interface Kind {
  name: string;
  /** how many of each 100 programs are of this kind */
  per100: number;
  program: (i: number) => string;
  tests: (i: number) => string;
  limits?: Partial<typeof SHORT>;
  /** undefined when the verdict is right, else what is wrong */
  verdict: (r: RunResult, i: number) => string | undefined;
}

const passes = (r: RunResult) => (r.passed && r.reason === 'passed' ? undefined : `expected a pass, got: ${r.reason}`);
const fails = (re: RegExp) => (r: RunResult) => (!r.passed && re.test(r.reason) ? undefined : `expected a failure matching ${re}, got: ${r.passed ? 'passed' : r.reason}`);

const KINDS: Kind[] = [
  // ---- honest
  { name: 'honest add', per100: 21, program: () => 'def add(a, b):\n    return a + b\n', tests: (i) => `assert add(${i}, 3) == ${i + 3}\n`, verdict: passes },
  {
    name: 'honest sort/strings',
    per100: 10,
    program: () => 'def solve(xs):\n    return sorted(set(xs))\n\ndef rev(s):\n    return s[::-1]\n',
    tests: (i) => `assert solve([${i}, 1, ${i}, 0]) == sorted({${i}, 1, 0})\nassert rev('ab${i}') == '${String(i).split('').reverse().join('')}ba'\n`,
    verdict: passes,
  },
  {
    name: 'honest with imports',
    per100: 6,
    program: () => 'import math, itertools, collections\ndef f(n):\n    return sum(math.comb(n, k) for k in range(n + 1))\n',
    tests: (i) => `assert f(${i % 20}) == 2 ** ${i % 20}\n`,
    verdict: passes,
  },
  // ---- wrong
  { name: 'wrong answer', per100: 14, program: () => 'def add(a, b):\n    return a - b\n', tests: (i) => `assert add(${i}, 3) == ${i + 3}\n`, verdict: fails(/AssertionError/) },
  { name: 'syntax error', per100: 4, program: () => 'def add(a, b)\n    return a + b\n', tests: () => 'assert add(1, 2) == 3\n', verdict: fails(/SyntaxError/) },
  { name: 'raises', per100: 4, program: () => 'def add(a, b):\n    raise ValueError("nope")\n', tests: () => 'assert add(1, 2) == 3\n', verdict: fails(/ValueError/) },
  { name: 'missing function', per100: 3, program: () => 'def plus(a, b):\n    return a + b\n', tests: () => 'assert add(1, 2) == 3\n', verdict: fails(/NameError/) },
  // ---- hostile, fast
  { name: 'sys.exit(0) to fake success', per100: 4, program: () => 'import sys\nsys.exit(0)\n', tests: () => 'assert False\n', verdict: fails(/exited .*before the tests finished/) },
  { name: 'os._exit(0) to fake success', per100: 3, program: () => 'import os\nos._exit(0)\n', tests: () => 'assert False\n', verdict: fails(/exited .*before the tests finished/) },
  {
    name: 'kills parent, pid 1, -1, its group',
    per100: 3,
    // (without namespaces, as root, kill(-1) would reach the whole machine: then only itself)
    program: () =>
      isolated
        ? 'import os, signal\nfor t in (os.getppid(), 1, -1):\n    try:\n        os.kill(t, signal.SIGKILL)\n    except OSError:\n        pass\nos.killpg(0, signal.SIGKILL)\n'
        : 'import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n',
    tests: () => 'assert True\n',
    verdict: (r) => (r.passed ? 'a program that killed itself passed' : undefined),
  },
  {
    name: 'closes stdout/stderr (honest)',
    per100: 3,
    program: () => 'import os\nos.close(1)\nos.close(2)\ndef add(a, b):\n    return a + b\n',
    tests: () => 'assert add(1, 1) == 2\n',
    verdict: passes,
  },
  {
    name: 'writes outside its folder',
    per100: 4,
    program: (i) =>
      `import os\nfor p in ["/tmp/${tag}-${i}", "/var/tmp/${tag}-${i}", "/dev/shm/${tag}-${i}", "../${tag}-${i}", "${join(process.cwd(), tag)}-${i}"]:\n` +
      '    try:\n        open(p, "w").write("escaped")\n    except OSError:\n        pass\ndef add(a, b):\n    return a + b\n',
    tests: () => 'assert add(2, 2) == 4\n',
    verdict: (r, i) => {
      if (!r.passed) return `expected a pass, got: ${r.reason}`;
      if (!isolated) return undefined;
      const leaked = ['/tmp', '/var/tmp', '/dev/shm', process.cwd()].map((d) => `${d}/${tag}-${i}`).filter((p) => existsSync(p));
      return leaked.length ? `files escaped: ${leaked.join(', ')}` : undefined;
    },
  },
  {
    name: 'leaves processes behind after passing',
    per100: 4,
    program: () =>
      'import os, threading, time\ndef add(a, b):\n    return a + b\n' +
      'threading.Thread(target=lambda: time.sleep(10**6), daemon=False).start()\n' +
      'if os.fork() == 0:\n    os.setsid()\n    time.sleep(10**6)\n',
    tests: () => 'assert add(2, 2) == 4\n',
    verdict: (r) => passes(r) ?? (r.durationMs > 3000 ? `took ${r.durationMs} ms: the leftovers were waited for` : undefined),
  },
  {
    name: 'floods stdout',
    per100: 3,
    program: () => "import sys\nchunk = 'x' * (1 << 16)\nwhile True:\n    sys.stdout.write(chunk)\n",
    tests: () => 'assert True\n',
    verdict: fails(/output limit exceeded/),
  },
  { name: 'allocates 8 GiB', per100: 3, program: () => 'x = bytearray(8 << 30)\n', tests: () => 'assert True\n', verdict: fails(/MemoryError/) },
  {
    name: 'memory bomb',
    per100: 2,
    program: () => 'blocks = []\nwhile True:\n    blocks.append(bytearray(16 << 20))\n',
    tests: () => 'assert True\n',
    verdict: fails(/MemoryError/),
  },
  {
    name: 'writes a huge file',
    per100: 2,
    program: () => "with open('big.bin', 'wb') as f:\n    for _ in range(64):\n        f.write(bytes(1 << 20))\n",
    tests: () => 'assert True\n',
    verdict: fails(/File too large|No space left/),
  },
  {
    name: 'connects to the host',
    per100: 2,
    program: () =>
      `import socket\ntry:\n    socket.create_connection(("127.0.0.1", PORT), timeout=0.5).close()\n    reached = True\nexcept OSError:\n    reached = False\n`,
    tests: () => 'assert not reached\n',
    verdict: (r) => (!isolated ? undefined : passes(r)),
  },
  {
    name: 'reads secrets from the environment and /proc',
    per100: 2,
    program: () =>
      'import os\nseen = repr(dict(os.environ))\nfor d in os.listdir("/proc"):\n    if d.isdigit():\n        try:\n            seen += open("/proc/%s/environ" % d, "rb").read().decode("latin1")\n        except OSError:\n            pass\nprint(seen)\n',
    tests: () => 'assert True\n',
    verdict: (r) => passes(r) ?? (isolated && r.stdout.includes(SECRET) ? 'the secret leaked into the sandbox' : undefined),
  },
  // ---- hostile, into the limits (few, with short limits)
  { name: 'infinite loop', per100: 1, limits: SHORT, program: () => 'while True:\n    pass\n', tests: () => '', verdict: fails(/CPU time limit exceeded|timed out/) },
  { name: 'sleeps forever', per100: 1, limits: SHORT, program: () => 'import time\ntime.sleep(10**6)\n', tests: () => '', verdict: fails(/timed out after 700 ms/) },
  {
    name: 'fork bomb',
    per100: 1,
    limits: SHORT,
    program: () => 'import os, time\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        time.sleep(0.01)\n',
    tests: () => '',
    verdict: (r) => (r.passed ? 'a fork bomb passed' : undefined),
  },
];

/** The run order: kinds by their share of each 100, shuffled with a fixed seed. */
function schedule(n: number): Kind[] {
  const total = KINDS.reduce((s, k) => s + k.per100, 0);
  if (total !== 100) throw new Error(`kind shares add up to ${total}, not 100`);
  const out: Kind[] = [];
  for (let b = 0; b < n; b += 100) for (const k of KINDS) for (let j = 0; j < k.per100 && out.length < n; j++) out.push(k);
  let s = 12345;
  for (let i = out.length - 1; i > 0; i--) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out.slice(0, n);
}

function processesOfUid(uids: Set<number>): number[] {
  const pids: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const m = /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${d}/status`, 'utf8'));
      if (m && uids.has(Number(m[1]))) pids.push(Number(d));
    } catch {
      /* exited meanwhile */
    }
  }
  return pids;
}

/** Live descendants of this process (children, grandchildren, ...). */
function descendants(): number[] {
  const parent = new Map<number, number>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parent.set(Number(d), ppid);
    } catch {
      /* exited meanwhile */
    }
  }
  const out: number[] = [];
  for (const pid of parent.keys()) {
    for (let p = parent.get(pid); p !== undefined && p > 1; p = parent.get(p)) {
      if (p === process.pid) {
        out.push(pid);
        break;
      }
    }
  }
  return out;
}

function leftovers(uids: Set<number>): string[] {
  const out: string[] = [];
  for (const dir of ['/tmp', '/var/tmp', '/dev/shm', process.cwd(), join(process.cwd(), '..')]) {
    let names: string[] = [];
    try {
      names = readdirSync(dir);
    } catch {
      continue;
    }
    for (const n of names) {
      try {
        const p = join(dir, n);
        if (n.startsWith(tag) || uids.has(lstatSync(p).uid)) out.push(p);
      } catch {
        /* removed meanwhile */
      }
    }
  }
  return out;
}

function fds(): Map<string, string> {
  const out = new Map<string, string>();
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      out.set(fd, readlinkSync(`/proc/self/fd/${fd}`));
    } catch {
      /* the directory handle of readdirSync itself */
    }
  }
  return out;
}

beforeAll(async () => {
  server = createServer((s) => {
    connections++;
    s.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});
afterAll(async () => {
  await pool.close();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

describe(`sandbox under load (isolation: ${isolation})`, () => {
  it(
    `${N} mixed honest and hostile programs: every verdict right, nothing leaked`,
    async () => {
      const uids = new Set(Array.from({ length: pool.concurrency }, (_, i) => pool.uidOf(i)));
      // warm up (interpreter choice, pipes), then take the baseline
      expect((await pool.run('def f():\n    return 1\n', 'assert f() == 1\n')).reason).toBe('passed');
      await new Promise((r) => setTimeout(r, 50));
      const fdsBefore = fds();
      const filesBefore = new Set(leftovers(uids));
      process.env.SCORE_RL_LOAD_SECRET = SECRET;

      const order = schedule(N);
      const wrong: string[] = [];
      const perKind = new Map<string, { n: number; ms: number }>();
      const t0 = Date.now();
      let next = 0;
      // feed the pool from a few more workers than slots, so it always has a queue
      const worker = async () => {
        for (let i = next++; i < order.length; i = next++) {
          const k = order[i]!;
          const program = k.program(i).replace('PORT', String(port));
          const r = await pool.run(program, k.tests(i), k.limits);
          const why = k.verdict(r, i);
          if (why) wrong.push(`#${i} ${k.name}: ${why}`);
          const s = perKind.get(k.name) ?? { n: 0, ms: 0 };
          s.n++;
          s.ms += r.durationMs;
          perKind.set(k.name, s);
        }
      };
      try {
        await Promise.all(Array.from({ length: pool.concurrency * 2 }, worker));
      } finally {
        delete process.env.SCORE_RL_LOAD_SECRET;
      }
      const seconds = (Date.now() - t0) / 1000;
      await new Promise((r) => setTimeout(r, 100)); // closed pipes are released on the next turns of the loop

      const table = [...perKind].map(([name, s]) => `  ${name.padEnd(44)} ${String(s.n).padStart(4)}  ${(s.ms / s.n).toFixed(0).padStart(5)} ms`).join('\n');
      console.log(`${order.length} programs in ${seconds.toFixed(1)} s (${((seconds * 1000) / order.length).toFixed(0)} ms each, 2 slots)\n${table}`);

      const fdsAfter = fds();
      const newFds = [...fdsAfter].filter(([fd, target]) => fdsBefore.get(fd) !== target).map(([fd, target]) => `${fd} -> ${target}`);
      expect(wrong).toEqual([]);
      expect(processesOfUid(uids)).toEqual([]);
      expect(descendants()).toEqual([]);
      expect(leftovers(uids).filter((p) => !filesBefore.has(p))).toEqual([]);
      expect(newFds).toEqual([]);
      expect(fdsAfter.size).toBe(fdsBefore.size);
      if (isolated) expect(connections).toBe(0);
    },
    300_000,
  );
});
