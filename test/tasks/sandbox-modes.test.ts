// The sandbox's weaker modes, used where the machine does not allow what root can do:
// 'user-namespaces' (an unprivileged user with user namespaces: no network, private
// folders, PID namespace, but no uid of its own) and 'none' (a plain child process with
// the same rlimits, process-group kill and a temporary working folder; no network
// isolation). Both must still grade, time out and clean up.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { describe, expect, it } from 'vitest';
import { CodeTask, DEFAULT_LIMITS, SandboxPool, detectIsolation, runProgram, type Isolation } from '../../lib/tasks/code/index.js';
import { dropsPrivileges, encodeJob, sandboxPython } from '../../lib/tasks/code/sandbox.js';
import { RUNNER_PY } from '../../lib/tasks/code/runner.js';

const userNsWorks = spawnSync('unshare', ['--user', '--map-root-user', '--net', 'true']).status === 0;

describe.each<[Isolation, boolean]>([
  ['user-namespaces', userNsWorks],
  ['none', true],
])('isolation %s', (isolation, available) => {
  const opts = { isolation, limits: { timeoutMs: 1500 } };

  it.skipIf(!available)('grades, times out and rejects early exits', async () => {
    expect((await runProgram('x = 1\n', 'assert x == 1\n', opts)).reason).toBe('passed');
    expect((await runProgram('x = 2\n', 'assert x == 1, "x is %d" % x\n', opts)).reason).toBe('failed: AssertionError: x is 2');
    const slow = await runProgram('import time\ntime.sleep(60)\n', '', opts);
    expect(slow.reason).toBe('timed out after 1500 ms (wall clock)');
    expect((await runProgram('import os\nos._exit(0)\n', 'assert False\n', opts)).passed).toBe(false);
  });

  it.skipIf(!available)('stdin is closed: reading it gives end of file at once', async () => {
    const r = await runProgram('import sys\nprint(repr(sys.stdin.read()))\n', '', opts);
    expect(r.reason).toBe('passed');
    expect(r.stdout).toBe("''\n");
  });

  it.skipIf(!available)('works in a fresh folder that is gone afterwards, with a scrubbed environment', async () => {
    const r = await runProgram("import os\nprint(os.getcwd())\nprint(sorted(os.environ))\nopen('f.txt', 'w').write('x')\n", '', opts);
    expect(r.reason).toBe('passed');
    const [cwd, env] = r.stdout.trim().split('\n');
    expect(env).toBe("['HOME', 'LANG', 'PATH', 'TMPDIR']");
    if (isolation === 'none') expect(existsSync(cwd!)).toBe(false);
    else expect(cwd).toBe('/tmp/work');
  });

  it.skipIf(!available || isolation === 'none')('has no network', async () => {
    const r = await runProgram('import socket\ntry:\n    socket.create_connection(("127.0.0.1", 9), timeout=1)\nexcept OSError as e:\n    print(e.errno)\n', '', opts);
    expect(r.stdout.trim()).toBe('101'); // ENETUNREACH: the namespace's loopback is down
  });
});

const root = process.getuid?.() === 0;

describe('plain mode (none)', () => {
  it('a child that leaves the process group (setsid) does not hang the run; as root it is killed', { timeout: 30_000 }, async () => {
    const program = 'import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(30)\n    os._exit(0)\nprint(os.getuid())\n';
    const t0 = Date.now();
    const r = await runProgram(program, '', { isolation: 'none', limits: { timeoutMs: 15_000 } });
    expect(r.reason).toBe('passed');
    // (it used to wait for the child's 30 s: 'close' waits for every holder of the pipes)
    expect(Date.now() - t0).toBeLessThan(12_000);
    const runUid = Number(r.stdout.trim());
    if (root) {
      expect(runUid).toBeGreaterThanOrEqual(2_000_000); // a uid of its own, not root
      // the setsid child went with it (and the run waited until the machine's init had reaped it)
      const left = spawnSync('ps', ['-o', 'pid=,stat=', '-U', String(runUid)], { encoding: 'utf8' });
      expect(left.stdout.trim()).toBe('');
    }
  });

  it.skipIf(!root)('as root: a uid of its own, so its files outside the working folder are removed and root-owned places refused', async () => {
    const mark = `/tmp/score-rl-plain-${process.pid}-${Date.now()}`;
    const r = await runProgram(`open(${JSON.stringify(mark)}, 'w').write('x')\ntry:\n    open('/etc/${mark.slice(5)}', 'w')\nexcept PermissionError:\n    print('refused')\n`, '', { isolation: 'none' });
    expect(r.reason).toBe('passed');
    expect(r.stdout.trim()).toBe('refused');
    expect(existsSync(mark)).toBe(false);
    expect(existsSync(`/etc/${mark.slice(5)}`)).toBe(false);
  });
});

describe('a wrong isolation value never reaches the runner', () => {
  it('an isolation that is not a mode is refused by the pool and by runProgram', async () => {
    expect(() => new SandboxPool({ isolation: '' as Isolation })).toThrow("sandbox: isolation '' is not one of namespaces, user-namespaces, none");
    await expect(runProgram('x = 1\n', '', { isolation: 'namespace' as Isolation })).rejects.toThrow(/isolation 'namespace' is not one of/);
  });

  // (run inside a throw-away mount namespace, so that a regression could not touch this machine's mounts)
  const mountNs = spawnSync('unshare', ['--mount', '--propagation', 'private', 'true']).status === 0;
  it.skipIf(!mountNs)('the runner refuses to mount anything unless it is PID 1 of a new PID namespace', () => {
    const job = { program: 'print(1)\n', tests: '', nonce: 'n', isolate: 1, workdir: '', uid: '', wallSeconds: 5, ...DEFAULT_LIMITS };
    const r = spawnSync('unshare', ['--mount', '--propagation', 'private', '--', 'sh', '-c', 'a=$(wc -l < /proc/self/mountinfo); python3 -I -S -c "$0" 4>&1; echo; echo "mounts $a $(wc -l < /proc/self/mountinfo)"', RUNNER_PY], {
      input: encodeJob(job),
      encoding: 'utf8',
    });
    expect(r.stdout).toContain('setup RuntimeError: not the first process of a new PID namespace: refusing to mount');
    const [before, after] = /mounts (\d+) (\d+)/.exec(r.stdout)!.slice(1);
    expect(after).toBe(before); // nothing mounted or covered
  });
});

describe('uids', () => {
  it('two pools in one process never share a uid (a run drains its uid of processes when it ends)', () => {
    const a = new SandboxPool({ concurrency: 4 });
    const b = new SandboxPool({ concurrency: 4 });
    const ua = [0, 1, 2, 3].map((i) => a.uidOf(i));
    const ub = [0, 1, 2, 3].map((i) => b.uidOf(i));
    expect(new Set([...ua, ...ub]).size).toBe(8);
    for (const u of [...ua, ...ub]) expect(u).toBeLessThan(2 ** 32 - 1);
    expect(new SandboxPool().concurrency).toBe(availableParallelism()); // default: the number of cores
  });
});

describe('sandbox failures are not program failures', () => {
  it('an interpreter that cannot start: a sandbox error, and CodeTask.reward throws instead of returning 0', async () => {
    const record = { id: 't', prompt: '', answer: 'assert True\n', meta: { kind: 'mbpp' } };
    const task = new CodeTask({ isolation: 'none', python: '/nonexistent/python3' });
    if (dropsPrivileges('none')) {
      // as root the interpreter is probed first (the unprivileged uid must be able to run it)
      await expect(runProgram('x = 1\n', '', { isolation: 'none', python: '/nonexistent/python3' })).rejects.toThrow(/^sandbox: no python3 .*could not start/);
      await expect(task.reward('x = 1\n', record)).rejects.toThrow(/^sandbox: no python3 .*could not start/);
    } else {
      const r = await runProgram('x = 1\n', '', { isolation: 'none', python: '/nonexistent/python3' });
      expect(r.passed).toBe(false);
      expect(r.sandboxError).toMatch(/could not start/);
      await expect(task.reward('x = 1\n', record)).rejects.toThrow(/^sandbox: could not start/);
    }
  });

  it.skipIf(detectIsolation() !== 'namespaces')('no interpreter the unprivileged uid can use: a clear error', async () => {
    await expect(runProgram('x = 1\n', '', { python: '/nonexistent/python3' })).rejects.toThrow(/no python3 whose standard library an unprivileged uid can import/);
  });

  it('a program that kills its supervisor (plain mode; as root the kill is refused) fails, without blaming the sandbox', async () => {
    const r = await runProgram('import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nimport time\ntime.sleep(5)\n', '', { isolation: 'none', limits: { timeoutMs: 3000 } });
    expect(r.passed).toBe(false);
    expect(r.sandboxError).toBeUndefined();
  });

  it.skipIf(detectIsolation() === 'none')('the runner has its own wall clock: nothing outlives a parent that never kills it', async () => {
    const python = await sandboxPython(undefined, detectIsolation());
    const child = spawn('unshare', ['--net', '--pid', '--mount', '--fork', '--kill-child', '--', python, '-I', '-S', '-c', RUNNER_PY], {
      stdio: ['pipe', 'ignore', 'ignore', 'pipe', 'pipe'],
    });
    const job = { program: 'import time\ntime.sleep(3600)\n', tests: '', nonce: 'n', isolate: 1, workdir: '', uid: 2_999_999, wallSeconds: 2, ...DEFAULT_LIMITS };
    child.stdin!.end(encodeJob(job));
    const t0 = Date.now();
    await new Promise((resolve) => child.on('exit', resolve));
    expect(Date.now() - t0).toBeLessThan(6000);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1500);
  });
});
