// Run one untrusted Python program plus its tests in its own python3 process.
// Where the machine allows it (root, or unprivileged user namespaces) the process
// is the first of fresh PID, mount, IPC, UTS and network namespaces (util-linux
// `unshare`): no network (only a loopback that is down), private tmpfs over every
// world-writable folder, and a PID namespace whose processes all die with it, so
// nothing can outlive the run. As root it also drops to an unprivileged uid of its
// own, which makes the process-count limit effective. Elsewhere it runs as a plain
// child in its own process group, with the same limits but no network isolation (as
// root still under a uid of its own, whose leftover processes are killed afterwards).
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { lstatSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { RUNNER_PY } from './runner.js';

export interface SandboxLimits {
  /** wall-clock limit in ms (default 10000) */
  timeoutMs: number;
  /** CPU seconds (RLIMIT_CPU, default 10) */
  cpuSeconds: number;
  /** address space (RLIMIT_AS, default 1 GiB) */
  memoryBytes: number;
  /** largest file the program may write (RLIMIT_FSIZE, default 16 MiB) */
  fileBytes: number;
  /** process count of the sandbox's uid (RLIMIT_NPROC, default 32) */
  processes: number;
  /** size of each private tmpfs, the working folder included (default 64 MiB) */
  tmpfsBytes: number;
  /** bytes kept of stdout and of stderr each (default 64 KiB) */
  outputBytes: number;
  /** total output after which the program is killed (default 8 MiB) */
  outputKillBytes: number;
}

export const DEFAULT_LIMITS: SandboxLimits = {
  timeoutMs: 10_000,
  cpuSeconds: 10,
  memoryBytes: 1 << 30,
  fileBytes: 16 << 20,
  processes: 32,
  tmpfsBytes: 64 << 20,
  outputBytes: 64 << 10,
  outputKillBytes: 8 << 20,
};

export type Isolation = 'namespaces' | 'user-namespaces' | 'none';

export interface RunResult {
  passed: boolean;
  /** one line: why it passed or failed */
  reason: string;
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  stdout: string;
  stderr: string;
  durationMs: number;
  /** set when the sandbox itself failed (could not start or set up), not the program */
  sandboxError?: string;
}

const resolved = new Map<string, string>();

/** The interpreter behind a command name, asked once: version-manager shims (pyenv)
 * cost a second per start, the real binary tens of milliseconds. */
export function resolvePython(python = 'python3'): string {
  let exe = resolved.get(python);
  if (exe === undefined) {
    const r = spawnSync(python, ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8', timeout: 30_000 });
    exe = r.status === 0 && r.stdout.trim() !== '' ? r.stdout.trim() : python;
    resolved.set(python, exe);
  }
  return exe;
}

const UNSHARE = ['--net', '--pid', '--mount', '--ipc', '--uts', '--fork', '--kill-child'];

/** Whether programs run under a uid of their own: whenever this process is root, except in
 * a user namespace (whose root is this process's own uid). Without it the process limit would
 * not count (root is exempt from RLIMIT_NPROC) and a program could signal or write whatever
 * root can, which matters most in 'none' mode (a container without CAP_SYS_ADMIN). */
export function dropsPrivileges(isolation: Isolation): boolean {
  return process.getuid?.() === 0 && isolation !== 'user-namespaces';
}

let blocks = 0;

/** A block of 256 uids far above any real account, one per pool (and one for runs made
 * without a pool): 16 blocks per process, spread by process id so that other processes'
 * differ. A run's uid is drained of processes when it ends, so two runs at the same time
 * must never share one. */
export function uidBlock(): number {
  const k = blocks++ % 16;
  return 2_000_000 + ((process.pid % 1_000_000) * 16 + k) * 256; // < 2^32 - 1
}

let directBase: number | undefined;
let directNext = 0;
/** A uid for a run made without a pool (runProgram, the interpreter probe). */
function directUid(): number {
  directBase ??= uidBlock();
  return directBase + (directNext++ % 256);
}
let isolationCache: Isolation | undefined;

/** What this machine allows, probed once: `unshare` as root, with a user namespace, or nothing. */
export function detectIsolation(python = 'python3'): Isolation {
  if (isolationCache !== undefined) return isolationCache;
  const probe = (extra: string[]) =>
    spawnSync('unshare', [...extra, ...UNSHARE, '--', resolvePython(python), '-I', '-S', '-c', 'pass'], { stdio: 'ignore', timeout: 10_000 }).status === 0;
  const root = process.getuid?.() === 0;
  isolationCache = root && probe([]) ? 'namespaces' : probe(['--user', '--map-root-user']) ? 'user-namespaces' : 'none';
  return isolationCache;
}

export interface RunOptions {
  limits?: Partial<SandboxLimits>;
  /** uid to run as (as root, in 'namespaces' and 'none' mode); the pool gives each slot its
   * own, and a run without one gets a fresh one */
  uid?: number;
  isolation?: Isolation;
  python?: string;
  /** import site (site-packages such as numpy become importable; slower start). Default false. */
  site?: boolean;
}

/** Pids of the processes whose real uid is `uid` (Linux /proc), zombies included: until the
 * machine's init reaps them (without a PID namespace: in its own time) they count against the
 * uid's process limit. */
function processesOf(uid: number): number[] {
  const pids: number[] = [];
  let names: string[] = [];
  try {
    names = readdirSync('/proc');
  } catch {
    return pids;
  }
  for (const d of names) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const status = readFileSync(`/proc/${d}/status`, 'utf8');
      const m = /^Uid:\s+(\d+)/m.exec(status);
      if (m && Number(m[1]) === uid) pids.push(Number(d));
    } catch {
      /* exited meanwhile */
    }
  }
  return pids;
}

/** The kernel tears a dead PID namespace down asynchronously: processes of the run's uid
 * can outlive its supervisor by a few milliseconds, and they would count against the
 * process limit of the slot's next program. Kill and wait for them (bounded). */
async function drainUid(uid: number, maxMs = 5000): Promise<void> {
  const until = Date.now() + maxMs;
  for (;;) {
    const left = processesOf(uid);
    if (left.length === 0 || Date.now() > until) return;
    for (const pid of left) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Without a private /tmp ('none' mode as root), what a run's uid left at the top of the
 * machine's world-writable folders is removed after it. */
function removeFilesOf(uid: number): void {
  for (const dir of ['/tmp', '/var/tmp', '/dev/shm']) {
    let names: string[] = [];
    try {
      names = readdirSync(dir);
    } catch {
      continue;
    }
    for (const n of names) {
      const p = join(dir, n);
      try {
        if (lstatSync(p).uid === uid) rmSync(p, { recursive: true, force: true });
      } catch {
        /* gone meanwhile */
      }
    }
  }
}

function lastLine(s: string): string {
  const lines = s.trimEnd().split('\n').filter((l) => l.trim() !== '');
  return (lines[lines.length - 1] ?? '').trim().slice(0, 300);
}

const PROBE = 'import math, random, hashlib, json, re, collections, itertools, functools, heapq, string, fractions, decimal';
const chosen = new Map<string, Promise<string>>();

/** The interpreter that the sandbox runs. Dropping to an unprivileged uid needs one whose
 * standard library that uid can read (a pyenv build under /root is not): the requested
 * interpreter is tried first, then Debian's /usr/bin/python3; the choice is made once. */
export function sandboxPython(requested: string | undefined, isolation: Isolation): Promise<string> {
  const key = `${requested ?? ''}|${isolation}`;
  let p = chosen.get(key);
  if (!p) {
    p = (async () => {
      const first = resolvePython(requested ?? 'python3');
      if (!dropsPrivileges(isolation)) return first;
      const candidates = requested === undefined && first !== '/usr/bin/python3' ? [first, '/usr/bin/python3'] : [first];
      const failures: string[] = [];
      for (const exe of candidates) {
        const r = await spawnRun(exe, PROBE, '', { isolation, uid: directUid(), limits: {} });
        if (r.passed) return exe;
        failures.push(`${exe}: ${r.reason}`);
      }
      throw new Error(`sandbox: no python3 whose standard library an unprivileged uid can import (${failures.join('; ')}); pass a world-readable interpreter`);
    })();
    chosen.set(key, p);
  }
  return p;
}

/** The runner's input: fields as `<name> <byte length>\n<bytes>\n`. */
export function encodeJob(job: Record<string, string | number>): Buffer {
  return Buffer.concat(
    Object.entries(job).map(([k, v]) => {
      const bytes = Buffer.from(String(v), 'utf8');
      return Buffer.concat([Buffer.from(`${k} ${bytes.length}\n`), bytes, Buffer.from('\n')]);
    }),
  );
}

/** Run `program` then `tests` (Python source) in one fresh sandboxed interpreter. */
export async function runProgram(program: string, tests: string, opts: RunOptions = {}): Promise<RunResult> {
  const isolation = opts.isolation === undefined ? detectIsolation(opts.python) : checkIsolation(opts.isolation);
  const python = await sandboxPython(opts.python, isolation);
  const uid = opts.uid ?? (dropsPrivileges(isolation) ? directUid() : undefined);
  return spawnRun(python, program, tests, { ...opts, isolation, ...(uid !== undefined ? { uid } : {}) });
}

const ISOLATIONS: readonly Isolation[] = ['namespaces', 'user-namespaces', 'none'];

/** An isolation mode named by a caller, checked (a wrong value must never reach the runner). */
export function checkIsolation(isolation: unknown): Isolation {
  if (!ISOLATIONS.includes(isolation as Isolation)) throw new Error(`sandbox: isolation '${String(isolation)}' is not one of ${ISOLATIONS.join(', ')}`);
  return isolation as Isolation;
}

function spawnRun(python: string, program: string, tests: string, opts: RunOptions & { isolation: Isolation }): Promise<RunResult> {
  const limits = { ...DEFAULT_LIMITS, ...opts.limits };
  const isolation = checkIsolation(opts.isolation);
  const nonce = randomBytes(16).toString('hex');
  const isolate = isolation !== 'none';
  const workdir = isolate ? undefined : mkdtempSync(join(tmpdir(), 'score-rl-sandbox-'));
  const uid = dropsPrivileges(isolation) ? (opts.uid ?? null) : null;
  const pyArgs = ['-I', '-B', ...(opts.site ? [] : ['-S']), '-c', RUNNER_PY];
  const [cmd, args] =
    isolation === 'namespaces'
      ? ['unshare', [...UNSHARE, '--', python, ...pyArgs]]
      : isolation === 'user-namespaces'
        ? ['unshare', ['--user', '--map-root-user', ...UNSHARE, '--', python, ...pyArgs]]
        : [python, pyArgs];
  const started = Date.now();
  return new Promise<RunResult>((resolve) => {
    const child = spawn(cmd, args as string[], {
      stdio: ['pipe', 'pipe', 'pipe', 'pipe', 'pipe'], // fd 3: the nonce on success; fd 4: how the worker ended
      detached: true, // its own process group, killed as a whole
      env: { PATH: '/usr/local/bin:/usr/bin:/bin', LANG: 'C.UTF-8' },
      cwd: workdir ?? '/',
    });
    const out = { stdout: [] as Buffer[], stderr: [] as Buffer[], kept: { stdout: 0, stderr: 0 }, total: 0 };
    let token = '';
    let timedOut = false;
    let outputKilled = false;
    let finished = false;
    const kill = () => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      kill();
    }, limits.timeoutMs);
    const collect = (name: 'stdout' | 'stderr') => (chunk: Buffer) => {
      out.total += chunk.length;
      const room = limits.outputBytes - out.kept[name];
      if (room > 0) {
        out[name].push(chunk.subarray(0, room));
        out.kept[name] += Math.min(room, chunk.length);
      }
      if (out.total > limits.outputKillBytes && !outputKilled) {
        outputKilled = true;
        kill();
      }
    };
    child.stdout!.on('data', collect('stdout'));
    child.stderr!.on('data', collect('stderr'));
    const resultPipe = child.stdio[3] as NodeJS.ReadableStream;
    resultPipe.on('data', (chunk: Buffer) => {
      token += chunk.toString('latin1');
      if (token.length > 64) token = token.slice(0, 64);
      // the tests have passed: nothing the program left running matters any more
      if (token === nonce) kill();
    });
    let status = '';
    const statusPipe = child.stdio[4] as NodeJS.ReadableStream;
    statusPipe.on('data', (chunk: Buffer) => {
      if (status.length < 64) status += chunk.toString('latin1');
    });
    for (const s of [child.stdin!, child.stdout!, child.stderr!, resultPipe, statusPipe] as NodeJS.EventEmitter[]) s.on('error', () => {});
    const wallSeconds = Math.ceil(limits.timeoutMs / 1000) + 5; // the runner's own backstop
    const job: Record<string, string | number> = { program, tests, nonce, isolate: isolate ? 1 : 0, workdir: workdir ?? '', uid: uid ?? '', wallSeconds, ...limits };
    child.stdin!.end(encodeJob(job));
    const finish = (code: number | null, signal: NodeJS.Signals | null, spawnError?: Error) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      kill();
      if (workdir) rmSync(workdir, { recursive: true, force: true });
      const stdout = Buffer.concat(out.stdout).toString('utf8');
      const stderr = Buffer.concat(out.stderr).toString('utf8');
      const passed = token === nonce && !spawnError;
      const worker = /^(exit|signal) (\d+)$/.exec(status);
      const setupError = status.startsWith('setup ') ? status.slice(6) : undefined;
      const wsig = worker?.[1] === 'signal' ? Number(worker[2]) : undefined;
      const wcode = worker?.[1] === 'exit' ? Number(worker[2]) : undefined;
      let reason: string;
      let sandboxError: string | undefined;
      if (spawnError) sandboxError = `could not start ${cmd} (${spawnError.message})`;
      else if (setupError !== undefined) sandboxError = setupError;
      else if (isolate && !timedOut && !outputKilled && worker === null && code !== 0 && token !== nonce) sandboxError = lastLine(stderr) || `${cmd} exited with code ${code}`;
      if (sandboxError !== undefined) reason = `sandbox error: ${sandboxError}`;
      else if (passed) reason = 'passed';
      else if (timedOut) reason = `timed out after ${limits.timeoutMs} ms (wall clock)`;
      else if (outputKilled) reason = `output limit exceeded (more than ${limits.outputKillBytes} bytes)`;
      else if (wsig === constants.signals.SIGXCPU) reason = `CPU time limit exceeded (${limits.cpuSeconds} s)`;
      else if (wsig !== undefined) reason = `killed by signal ${wsig}`;
      else if (worker === null) reason = 'failed: the program killed the sandbox supervisor';
      else if (wcode === 70) reason = `sandbox error: ${lastLine(stderr) || 'the worker could not be confined'}`;
      else if (wcode === 0) reason = 'failed: the program exited before the tests finished';
      else reason = `failed: ${lastLine(stderr) || `exit code ${wcode}`}`;
      const result = { passed, reason, exitCode: code, signal, timedOut, stdout, stderr, durationMs: Date.now() - started, ...(sandboxError !== undefined ? { sandboxError } : {}) };
      if (uid === null) resolve(result);
      else
        void drainUid(uid).then(() => {
          if (!isolate) removeFilesOf(uid);
          resolve(result);
        });
    };
    child.on('exit', (code, signal) => {
      kill(); // whatever is left of its process group goes with it
      if (isolate) return; // (the PID namespace died with its first process)
      // A process that left the group (setsid) may still hold the output pipes, and 'close'
      // would wait for it: kill whatever runs under the run's uid, and after a grace period
      // stop waiting for the pipes (without a uid of its own such a process outlives the run).
      if (uid !== null) void drainUid(uid);
      setTimeout(() => {
        for (const s of [child.stdout, child.stderr, resultPipe, statusPipe]) (s as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
        finish(code, signal);
      }, 1000).unref();
    });
    child.on('error', (e) => finish(null, null, e));
    child.on('close', (code, signal) => finish(code, signal));
  });
}
