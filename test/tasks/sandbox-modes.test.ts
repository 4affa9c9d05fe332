// The sandbox's weaker modes, used where the machine does not allow what root can do:
// 'user-namespaces' (an unprivileged user with user namespaces: no network, private
// folders, PID namespace, but no uid of its own) and 'none' (a plain child process with
// the same rlimits, process-group kill and a temporary working folder; no network
// isolation). Both must still grade, time out and clean up.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CodeTask, DEFAULT_LIMITS, detectIsolation, runProgram, type Isolation } from '../../lib/tasks/code/index.js';
import { encodeJob, sandboxPython } from '../../lib/tasks/code/sandbox.js';
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

describe('sandbox failures are not program failures', () => {
  it('an interpreter that cannot start: a sandbox error, and CodeTask.reward throws instead of returning 0', async () => {
    const r = await runProgram('x = 1\n', '', { isolation: 'none', python: '/nonexistent/python3' });
    expect(r.passed).toBe(false);
    expect(r.sandboxError).toMatch(/could not start/);
    const task = new CodeTask({ isolation: 'none', python: '/nonexistent/python3' });
    const record = { id: 't', prompt: '', answer: 'assert True\n', meta: { kind: 'mbpp' } };
    await expect(task.reward('x = 1\n', record)).rejects.toThrow(/^sandbox: could not start/);
  });

  it.skipIf(detectIsolation() !== 'namespaces')('no interpreter the unprivileged uid can use: a clear error', async () => {
    await expect(runProgram('x = 1\n', '', { python: '/nonexistent/python3' })).rejects.toThrow(/no python3 whose standard library an unprivileged uid can import/);
  });

  it('a program that kills its supervisor (plain mode) fails, without blaming the sandbox', async () => {
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
