// The Python side of the sandbox, passed to `python3 -I -B -c`. It is the first
// process of fresh PID, mount and network namespaces (or, where those are not to be
// had, a plain child process). It reads one JSON job from stdin, then sets up: private
// size-limited tmpfs over every world-writable folder and a fresh /proc (namespaces
// only), a new working folder, a scrubbed environment, stdin on /dev/null, resource
// limits and an unprivileged uid; then it runs the program and its tests in one
// namespace. Success is only ever reported by writing the job's nonce to fd 3 after
// the tests have finished, so a program that exits early (sys.exit, os._exit) fails.
export const RUNNER_PY = String.raw`
import os, resource, sys

def read_job():
    # fields as '<name> <byte length>\n<bytes>\n' (no json import: it costs start-up time)
    data = sys.stdin.buffer.read()
    job, i = {}, 0
    while i < len(data):
        nl = data.index(b'\n', i)
        name, size = data[i:nl].decode().split(' ')
        start = nl + 1
        job[name] = data[start:start + int(size)].decode('utf-8')
        i = start + int(size) + 1
    for k in ('cpuSeconds', 'memoryBytes', 'fileBytes', 'processes', 'tmpfsBytes', 'wallSeconds'):
        job[k] = int(job[k])
    job['isolate'] = job['isolate'] == '1'
    job['uid'] = int(job['uid']) if job.get('uid') else None
    return job

def print_exc(limit=None):
    import traceback
    traceback.print_exc(limit=limit)

def mount_private(job):
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    MS_NOSUID, MS_NODEV, MS_REC, MS_PRIVATE = 2, 4, 16384, 1 << 18
    def mount(src, target, fstype, flags, data):
        if libc.mount(src.encode(), target.encode(), fstype.encode() if fstype else None, flags, data.encode() if data else None) != 0:
            raise OSError(ctypes.get_errno(), 'mount ' + target)
    mount('none', '/', None, MS_REC | MS_PRIVATE, None)
    for d in ('/tmp', '/var/tmp', '/dev/shm', '/run/lock', '/dev/mqueue'):
        if os.path.isdir(d):
            mount('tmpfs', d, 'tmpfs', MS_NOSUID | MS_NODEV, 'size=%d,mode=1777' % job['tmpfsBytes'])
    mount('proc', '/proc', 'proc', MS_NOSUID | MS_NODEV, None)

def setup():
    job = read_job()
    null = os.open('/dev/null', os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    if job['isolate']:
        mount_private(job)
        work = '/tmp/work'
        os.mkdir(work, 0o700)
    else:
        work = job['workdir']
    uid = job['uid']
    with open(os.path.join(work, 'program.py'), 'w') as f:
        f.write(job['program'])
    if uid is not None:
        os.chown(work, uid, uid)
        os.chown(os.path.join(work, 'program.py'), uid, uid)
    os.chdir(work)
    os.environ.clear()
    os.environ.update({'PATH': '/usr/local/bin:/usr/bin:/bin', 'HOME': work, 'TMPDIR': work, 'LANG': 'C.UTF-8'})
    return job

def confine(job):
    def limit(which, soft, hard=None):
        resource.setrlimit(which, (soft, soft if hard is None else hard))
    limit(resource.RLIMIT_CPU, job['cpuSeconds'], job['cpuSeconds'] + 1)
    limit(resource.RLIMIT_AS, job['memoryBytes'])
    limit(resource.RLIMIT_FSIZE, job['fileBytes'])
    limit(resource.RLIMIT_NPROC, job['processes'])
    limit(resource.RLIMIT_NOFILE, 256)
    limit(resource.RLIMIT_CORE, 0)
    uid = job['uid']
    if uid is not None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)

def worker(job):
    # the child: limits, identity, then the untrusted code
    os.close(4)
    try:
        confine(job)
        program, tests, nonce = job['program'], job['tests'], job['nonce'].encode()
        del job
    except BaseException:
        print_exc()
        os._exit(70)
    scope = {'__name__': '__main__', '__builtins__': __builtins__}
    try:
        exec(compile(program, 'program.py', 'exec'), scope)
        exec(compile(tests, 'tests.py', 'exec'), scope)
    except SystemExit as e:
        sys.stderr.write('\nSystemExit: the program exited (code %r) before the tests finished\n' % (e.code,))
        os._exit(1)
    except BaseException:
        try:
            print_exc(limit=-3)
            sys.stderr.flush()
        finally:
            os._exit(1)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    try:
        os.write(3, nonce)
    finally:
        os._exit(0)

def supervise():
    # the parent (PID 1 of the namespace when isolated): waits for the worker and
    # reports how it ended on fd 4; when it exits, the namespace and all in it die
    try:
        job = setup()
    except BaseException as e:
        print_exc()
        try:
            os.write(4, ('setup %s: %s' % (type(e).__name__, e)).encode()[:300])
        finally:
            os._exit(70)
    # a wall clock of its own, so that nothing outlives a parent that died without killing it
    import signal
    signal.signal(signal.SIGALRM, lambda *_: os._exit(124))
    signal.alarm(job['wallSeconds'])
    pid = os.fork()
    if pid == 0:
        worker(job)
    os.close(3)
    while True:
        wpid, status = os.waitpid(-1, 0)
        if wpid == pid:
            break
    if os.WIFSIGNALED(status):
        msg = 'signal %d' % os.WTERMSIG(status)
    else:
        msg = 'exit %d' % os.WEXITSTATUS(status)
    try:
        os.write(4, msg.encode())
    finally:
        os._exit(0)

supervise()
`;
