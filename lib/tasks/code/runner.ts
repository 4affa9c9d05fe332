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
    private = set()
    for d in ('/tmp', '/var/tmp', '/dev/shm', '/run/lock', '/dev/mqueue'):
        if os.path.isdir(d):
            mount('tmpfs', d, 'tmpfs', MS_NOSUID | MS_NODEV, 'size=%d,mode=1777' % job['tmpfsBytes'])
            private.add(d)
    mount('proc', '/proc', 'proc', MS_NOSUID | MS_NODEV, None)
    # Every other mount read-only in this namespace: with user namespaces the program is
    # this user and could otherwise write wherever the user can (home, the repository).
    # A bind remount must repeat the mount's other flags (locked in a user namespace).
    MS_RDONLY, MS_REMOUNT, MS_BIND = 1, 32, 4096
    keep = ((2, 2), (4, 4), (8, 8), (1024, 1024), (2048, 2048), (4096, 1 << 21))  # statvfs ST_* -> MS_*
    with open('/proc/self/mountinfo') as f:
        points = [re_octal(line.split(' ')[4]) for line in f]
    for mp in points:
        if mp in private or mp == '/proc' or mp.startswith('/proc/'):
            continue
        try:
            st = os.statvfs(mp).f_flag
        except OSError:
            continue
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY
        for bit, ms in keep:
            if st & bit:
                flags |= ms
        try:
            mount('none', mp, None, flags, None)
        except OSError:
            if mp == '/':
                raise

def re_octal(path):
    # mountinfo writes space, tab, newline and backslash as \040 \011 \012 \134
    out, i = '', 0
    while i < len(path):
        if path[i] == '\\' and path[i + 1:i + 4].isdigit():
            out += chr(int(path[i + 1:i + 4], 8))
            i += 4
        else:
            out += path[i]
            i += 1
    return out

def drop_capabilities():
    # user namespaces: the program is root of its namespace; take every capability away
    # (bounding set too, so that exec cannot give them back): it cannot mount, remount
    # the file systems writable or signal what it does not own
    import ctypes, errno
    libc = ctypes.CDLL(None, use_errno=True)
    PR_CAPBSET_DROP = 24
    for cap in range(64):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            if ctypes.get_errno() == errno.EINVAL:
                break
            raise OSError(ctypes.get_errno(), 'PR_CAPBSET_DROP')
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this thread
    data = (ctypes.c_uint32 * 6)()
    if libc.capset(header, data) != 0:
        raise OSError(ctypes.get_errno(), 'capset')

def setup():
    job = read_job()
    null = os.open('/dev/null', os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    if job['isolate']:
        # mounting is only ever done as PID 1 of a fresh namespace (unshare --pid --fork):
        # anywhere else it would cover the machine's own /tmp and make its mounts read-only
        if os.getpid() != 1:
            raise RuntimeError('not the first process of a new PID namespace: refusing to mount')
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
    import ctypes
    PR_SET_NO_NEW_PRIVS = 38  # set-user-id programs (su, sudo) give nothing
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), 'PR_SET_NO_NEW_PRIVS')
    uid = job['uid']
    if uid is not None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    elif job['isolate']:
        drop_capabilities()

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
            # free what the program holds first: after a MemoryError the traceback module
            # could not even be imported
            scope.clear()
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
        if job['isolate']:
            # a process group of its own inside the namespace: the program's killpg(0)
            # must not reach the unshare process outside it
            os.setsid()
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
