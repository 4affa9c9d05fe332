// Hostile programs, one test each: every one is contained by its limit, leaves no
// process and no file behind, and the runner serves the next program normally.
// The suite runs in the isolation this machine allows; SCORE_RL_TEST_ISOLATION=
// user-namespaces|none runs it in a weaker mode (to see what that mode contains).
import { existsSync, lstatSync, readdirSync, readFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { SandboxPool, detectIsolation, type Isolation, type RunResult } from '../../lib/tasks/code/index.js';
import { dropsPrivileges } from '../../lib/tasks/code/sandbox.js';

const isolation = (process.env.SCORE_RL_TEST_ISOLATION || detectIsolation()) as Isolation;
const isolated = isolation !== 'none';
/** runs under a uid of their own (root, except with user namespaces) */
const ownUid = dropsPrivileges(isolation);
/** A program that signals every process it may, or forks without bound, is only safe to
 * run where a PID namespace or a uid of its own holds it: in 'none' mode without root it
 * would reach this user's other processes, so those tests are skipped there. */
const containsEverything = isolated || ownUid;
const pool = new SandboxPool({ isolation, concurrency: 1, limits: { timeoutMs: 3000, cpuSeconds: 2, memoryBytes: 256 << 20 } });
const uid = pool.uidOf(0);
const tag = `score-rl-escape-${process.pid}-${Date.now()}`;
afterAll(() => pool.close());

/** Processes of uid `u` on the machine, zombies included. */
function processesOf(u: number): number[] {
  const pids: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const status = readFileSync(`/proc/${d}/status`, 'utf8');
      const m = /^Uid:\s+(\d+)/m.exec(status);
      if (m && Number(m[1]) === u) pids.push(Number(d));
    } catch {
      /* exited meanwhile */
    }
  }
  return pids;
}

/** Files owned by the sandbox uid, or named by the escape tag, in the shared writable folders. */
function leftovers(): string[] {
  const out: string[] = [];
  for (const dir of ['/tmp', '/var/tmp', '/dev/shm', process.cwd()]) {
    let names: string[] = [];
    try {
      names = readdirSync(dir);
    } catch {
      continue;
    }
    for (const n of names) {
      try {
        const p = join(dir, n);
        if (n.startsWith(tag) || n.startsWith('score-rl-sandbox-') || lstatSync(p).uid === uid) out.push(p);
      } catch {
        /* removed meanwhile */
      }
    }
  }
  return out;
}

async function hostile(program: string, tests = ''): Promise<RunResult> {
  const t0 = Date.now();
  const r = await pool.run(program, tests);
  console.log(`${(Date.now() - t0).toString().padStart(5)} ms  ${r.reason}`);
  return r;
}

afterEach(async () => {
  // nothing left behind, and the runner still serves an honest program
  expect(processesOf(uid)).toEqual([]);
  expect(leftovers()).toEqual([]);
  const ok = await pool.run('def add(a, b):\n    return a + b\n', 'assert add(2, 3) == 5\n');
  expect(ok.reason).toBe('passed');
});

describe(`hostile programs (isolation: ${isolation})`, () => {
  it('an infinite loop: stopped by the CPU-time limit', async () => {
    const r = await hostile('while True:\n    pass\n');
    expect(r.passed).toBe(false);
    expect(r.reason).toMatch(/CPU time limit exceeded|timed out/);
  });

  it('an infinite sleep: stopped by the wall-clock limit', async () => {
    const r = await hostile('import time\nwhile True:\n    time.sleep(1)\n');
    expect(r.reason).toBe('timed out after 3000 ms (wall clock)');
    expect(r.durationMs).toBeLessThan(6000);
  });

  it.skipIf(!containsEverything)('a fork bomb: held by the process limit, all of it killed', async () => {
    const r = await hostile('import os, time\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        time.sleep(0.01)\n');
    expect(r.passed).toBe(false);
    expect(r.reason).toMatch(/timed out|CPU time limit|killed/);
    // the limit itself: forking stops at the process limit (32 for the uid). (Root forced into
    // user namespaces has no limit, root's real uid being exempt: there the wall clock and
    // the PID namespace hold the bomb, as above.)
    if (!ownUid && process.getuid?.() === 0) return;
    const count = await hostile(
      'import os, time\nn = 0\ntry:\n    while True:\n        if os.fork() == 0:\n            time.sleep(100)\n            os._exit(0)\n        n += 1\nexcept OSError as e:\n    print(n, e)\n',
    );
    expect(count.reason).toBe('passed');
    const forked = Number(count.stdout.split(' ')[0]);
    console.log(`forks before the limit: ${count.stdout.trim()}`);
    // (the limit counts the uid's processes: exact only where the uid is the sandbox's own)
    if (ownUid) {
      expect(forked).toBeGreaterThan(0);
      expect(forked).toBeLessThan(32);
    } else expect(count.stdout).toMatch(/^\d+ \[Errno 11\]/);
  });

  it('a memory bomb: MemoryError at the address-space limit', async () => {
    const r = await hostile('blocks = []\nwhile True:\n    blocks.append(bytearray(16 << 20))\n');
    expect(r.reason).toMatch(/MemoryError/);
    const big = await hostile('x = bytearray(8 << 30)\n');
    expect(big.reason).toMatch(/MemoryError/);
  });

  it('writing a 10 GB file: stopped at the file-size limit', async () => {
    const r = await hostile("with open('big.bin', 'wb') as f:\n    for _ in range(10 * 1024):\n        f.write(bytes(1 << 20))\n");
    expect(r.passed).toBe(false);
    expect(r.reason).toMatch(/File too large|No space left/);
  });

  it.skipIf(!containsEverything)('writing outside the working folder: nothing reaches the machine, or (plain mode as root) is removed afterwards', async () => {
    const targets = [`/tmp/${tag}`, `/var/tmp/${tag}`, `/dev/shm/${tag}`, `../${tag}`, `../../${tag}`, join(process.cwd(), tag), `/root/${tag}`, `/etc/${tag}`];
    const program =
      'import os\nwrote = []\n' +
      `for p in ${JSON.stringify(targets)}:\n` +
      '    try:\n        with open(p, "w") as f:\n            f.write("escaped")\n        wrote.append(p)\n    except OSError:\n        pass\n' +
      'print("wrote", wrote)\n';
    const r = await hostile(program);
    expect(r.passed).toBe(true);
    for (const t of targets.filter((t) => t.startsWith('/'))) expect(existsSync(t), t).toBe(false);
  });

  it.skipIf(!isolated)('opening a network connection: no network in the sandbox', async () => {
    let connections = 0;
    const server = createServer((s) => {
      connections++;
      s.destroy();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    try {
      const program =
        'import socket\nresults = []\n' +
        `for host in ["127.0.0.1", "localhost"]:\n` +
        `    try:\n        socket.create_connection((host, ${port}), timeout=1).close()\n        results.append("connected")\n` +
        '    except OSError as e:\n        results.append(type(e).__name__)\n' +
        'print(results)\nassert "connected" not in results\n';
      const r = await hostile(program);
      expect(r.reason).toBe('passed');
      expect(connections).toBe(0);
    } finally {
      server.close();
    }
  });

  it('reading environment secrets: the environment is scrubbed and other processes are out of sight', async () => {
    const secret = `hunter2-${Date.now()}`;
    process.env.SCORE_RL_TEST_SECRET = secret;
    try {
      const program =
        'import os\nout = [repr(dict(os.environ))]\n' +
        'for p in ["/proc/self/environ", "/proc/1/environ", "/proc/%d/environ" % os.getppid()] + ["/proc/%s/environ" % d for d in os.listdir("/proc") if d.isdigit()]:\n' +
        '    try:\n        out.append(open(p, "rb").read().decode("latin1"))\n    except OSError:\n        pass\n' +
        'print("\\n".join(out))\n';
      const r = await hostile(program);
      expect(r.reason).toBe('passed');
      expect(r.stdout).toContain('PATH');
      if (isolated) expect(r.stdout).not.toContain(secret);
      else expect(r.stdout.split('\n')[0]).not.toContain(secret);
    } finally {
      delete process.env.SCORE_RL_TEST_SECRET;
    }
  });

  it.skipIf(!containsEverything)('killing its parent and everything it can reach: only itself dies', async () => {
    const r = await hostile('import os, signal\nfor target in (os.getppid(), 1, -1):\n    try:\n        os.kill(target, signal.SIGKILL)\n    except OSError:\n        pass\nos.killpg(0, signal.SIGKILL)\n');
    expect(r.passed).toBe(false);
    expect(process.pid).toBeGreaterThan(0); // we are still here, and afterEach runs the next program
  });

  it('printing 1 GB: killed at the output limit, output kept up to its cap', async () => {
    const r = await hostile("import sys\nchunk = 'x' * (1 << 20)\nfor _ in range(1024):\n    sys.stdout.write(chunk)\n");
    expect(r.passed).toBe(false);
    expect(r.reason).toBe(`output limit exceeded (more than ${8 << 20} bytes)`);
    expect(r.stdout.length).toBe(64 << 10);
    expect(r.durationMs).toBeLessThan(3000);
  });

  it('closing stdout and stderr: the verdict still comes back', async () => {
    const r = await hostile('import os\nos.close(1)\nos.close(2)\ndef add(a, b):\n    return a + b\n', 'assert add(1, 1) == 2\n');
    expect(r.reason).toBe('passed');
    const bad = await hostile('import os\nos.close(1)\nos.close(2)\ndef add(a, b):\n    return 0\n', 'assert add(1, 1) == 2\n');
    expect(bad.passed).toBe(false);
  });

  it.skipIf(!containsEverything)('sleeping forever after the tests pass: passed, and its leftovers killed at once', async () => {
    const program =
      'import atexit, os, threading, time\n' +
      'def add(a, b):\n    return a + b\n' +
      'threading.Thread(target=lambda: time.sleep(10**6)).start()\n' +
      'if os.fork() == 0:\n    os.setsid()\n    time.sleep(10**6)\n' +
      'atexit.register(lambda: time.sleep(10**6))\n';
    const r = await hostile(program, 'assert add(2, 2) == 4\n');
    expect(r.reason).toBe('passed');
    // (without a PID namespace the setsid() child holds the output pipes until its uid is drained)
    expect(r.durationMs).toBeLessThan(isolated ? 2500 : 2900);
  });

  it('exiting early to fake success (sys.exit(0), os._exit(0)): failed', async () => {
    for (const exit of ['import sys\nsys.exit(0)\n', 'import os\nos._exit(0)\n']) {
      const r = await hostile(exit, 'assert False\n');
      expect(r.passed).toBe(false);
      expect(r.reason).toMatch(/exited .*before the tests finished/);
    }
  });
});
