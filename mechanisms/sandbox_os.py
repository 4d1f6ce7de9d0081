"""OS-level confinement of an untrusted process, the same steps for every user, and a report of what holds.

Loaded by file path, standard library and ctypes only, by two callers that choose the steps through Options:
mechanisms/sandbox_worker.py (after its imports, before it serves any request: everything below, no file
access at all) and workloads/train_launcher.py (a training script the LLM may have written: no root drop, no
chroot, Landlock allowing reads of the interpreter, libraries and workload and writes of the run folder, a
temporary directory and the GPU devices; rlimits a training tolerates; a seccomp list that keeps exec and
threads). The order (DESIGN §5):

  1. a worker started as root becomes an unprivileged uid (nobody, or `become_uid` in tests), so what
     follows is exactly the path of an ordinary user (`drop_root`);
  2. unshare user, mount, PID, network, IPC and UTS namespaces; write the uid/gid maps (setgroups deny
     first); chroot into the (empty, read-only) working directory inside the user namespace (`chroot`);
  3. fork, so the serving process is PID 1 of the new PID namespace: nothing outside it can be seen or
     signalled, and /proc of the parent is not there. The parent stays as a small keeper that waits
     for it and exits the same way (the host kills the whole process group);
  4. drop every capability held in the namespace (bounding set, ambient, then capset to empty):
     otherwise a namespaced root could leave the chroot;
  5. rlimits (mechanisms: address space, CPU, open files, FSIZE 0, CORE 0, NPROC 0; each a knob, 0 or
     None meaning as the knob says), no_new_privs;
  6. Landlock, where the kernel offers it: no file access except beneath `read_paths` (read, execute)
     and `write_paths` (everything, device ioctls included), no TCP bind/connect (ABI >= 4), no signals
     or abstract unix sockets outside the sandbox (ABI >= 6);
  7. seccomp, where libseccomp is installed: the system calls the process never needs fail with EPERM
     (`seccomp_profile`: "mechanism" also denies sockets, exec, fork, kill, open, file changes...;
     "training" only what no training does: ptrace, mount, namespaces, kernel keys, modules...).

Landlock and seccomp are plain ctypes here. The PyPI `landlock` package (1.0.0.dev5, alpha) only
knows file rights, not the TCP and signal scoping that matter most when namespaces are missing;
`pyseccomp` (0.1.2, 2021) is itself a ctypes wrapper of libseccomp that spawns ldconfig and raises at
import when the library is missing. So this file calls libseccomp (the library systemd, Docker and
Podman use, which resolves syscall names per architecture and rejects foreign ABIs) directly.
Steps 2 and 3 can be switched off (`isolate=False`) to simulate a kernel without user namespaces;
Landlock and seccomp can be switched off to test the other layers alone.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import stat

NOBODY = 65534
CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
NAMESPACES = {
    "user_namespace": CLONE_NEWUSER,
    "mount_namespace": CLONE_NEWNS,
    "pid_namespace": CLONE_NEWPID,
    "network_namespace": CLONE_NEWNET,
    "ipc_namespace": CLONE_NEWIPC,
    "uts_namespace": CLONE_NEWUTS,
}
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
LINUX_CAPABILITY_VERSION_3 = 0x20080522
SYS_LANDLOCK_CREATE_RULESET = 444  # the same number on every architecture (added after the 424 unification)
SYS_LANDLOCK_RESTRICT_SELF = 446
LANDLOCK_CREATE_RULESET_VERSION = 1
SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_ACT_ERRNO_EPERM = 0x00050000 | 1

# What a confined worker never does once it serves: it only reads and writes its pipes and computes.
DENIED_SYSCALLS = (
    "socket socketpair connect bind listen accept accept4 "
    "ptrace process_vm_readv process_vm_writev "
    "mount umount umount2 pivot_root chroot unshare setns fsopen fsconfig fsmount fspick move_mount open_tree "
    "mount_setattr "
    "clone clone3 fork vfork execve execveat "
    "kill tkill tgkill rt_sigqueueinfo rt_tgsigqueueinfo pidfd_open pidfd_send_signal pidfd_getfd "
    "open openat openat2 creat memfd_create name_to_handle_at open_by_handle_at "
    "unlink unlinkat rename renameat renameat2 mkdir mkdirat rmdir link linkat symlink symlinkat truncate mknod "
    "mknodat chmod fchmod fchmodat fchmodat2 chown fchown lchown fchownat setxattr lsetxattr fsetxattr removexattr "
    "lremovexattr fremovexattr "
    "bpf perf_event_open userfaultfd io_uring_setup io_uring_enter io_uring_register keyctl add_key request_key "
    "init_module finit_module delete_module kexec_load kexec_file_load reboot swapon swapoff acct quotactl "
    "syslog personality settimeofday clock_settime clock_adjtime adjtimex sethostname setdomainname iopl ioperm "
    "fanotify_init"
).split()
# What a training never does: it needs open, exec, threads, fork and pipes, so only these go.
TRAINING_DENIED_SYSCALLS = (
    "ptrace process_vm_readv process_vm_writev "
    "mount umount umount2 pivot_root chroot unshare setns fsopen fsconfig fsmount fspick move_mount open_tree "
    "mount_setattr name_to_handle_at open_by_handle_at "
    "bpf userfaultfd io_uring_setup io_uring_enter io_uring_register keyctl add_key request_key "
    "init_module finit_module delete_module kexec_load kexec_file_load reboot swapon swapoff acct quotactl "
    "syslog settimeofday clock_settime clock_adjtime adjtimex sethostname setdomainname iopl ioperm fanotify_init"
).split()
SECCOMP_PROFILES = {"mechanism": DENIED_SYSCALLS, "training": TRAINING_DENIED_SYSCALLS}
SYS_LANDLOCK_ADD_RULE = 445
LANDLOCK_RULE_PATH_BENEATH = 1
LANDLOCK_READ = (1 << 0) | (1 << 2) | (1 << 3)  # execute, read_file, read_dir
# The rights a rule on a file (not a directory) may carry: execute, write_file, read_file, truncate, ioctl_dev.
LANDLOCK_FILE_RIGHTS = (1 << 0) | (1 << 1) | (1 << 2) | (1 << 14) | (1 << 15)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class Options:
    """The confinement knobs: the defaults are the mechanism worker's; the training launcher sets its own."""

    def __init__(self, raw: dict) -> None:
        self.memory_mb = int(raw.get("memory_mb", 1024))  # RLIMIT_AS; 0: unlimited
        self.cpu_s = int(raw.get("cpu_s", 600))  # RLIMIT_CPU; 0: unlimited
        self.max_open_files = int(raw.get("max_open_files", 16))
        self.file_size_mb = int(raw.get("file_size_mb", 0))  # RLIMIT_FSIZE: 0 means no file may grow at all
        self.nproc = int(raw.get("nproc", 0))  # RLIMIT_NPROC: 0 means no child process (nor thread)
        self.isolate = bool(raw.get("isolate", True))
        self.drop_root = bool(raw.get("drop_root", True))
        self.chroot = bool(raw.get("chroot", True))
        self.landlock = bool(raw.get("landlock", True))
        self.read_paths = tuple(str(p) for p in raw.get("read_paths", ()))  # Landlock: read and execute beneath
        self.write_paths = tuple(str(p) for p in raw.get("write_paths", ()))  # Landlock: every right beneath
        self.seccomp = bool(raw.get("seccomp", True))
        self.seccomp_profile = str(raw.get("seccomp_profile", "mechanism"))
        if self.seccomp_profile not in SECCOMP_PROFILES:
            raise ValueError(f"unknown seccomp_profile {self.seccomp_profile!r}; one of {', '.join(SECCOMP_PROFILES)}")
        # Test knob, honoured only when started as root: become this uid instead of nobody (DESIGN §5).
        self.become_uid = None if raw.get("become_uid") is None else int(raw["become_uid"])
        self.become_gid = None if raw.get("become_gid") is None else int(raw["become_gid"])


def confine(options: Options, keeper_closes: tuple[int, ...] = ()) -> dict:
    """Apply every protection this platform offers to the calling (single-threaded) process; returns the
    report of what holds. With a PID namespace the caller forks: only the child returns, the parent keeps
    waiting for it (after closing `keeper_closes`) and exits with its status."""
    report: dict = {"started_as_root": os.geteuid() == 0}
    errors: dict = {}
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    seccomp_lib = _load_libseccomp(errors) if options.seccomp else None
    last_cap = _last_capability()
    if options.drop_root:
        _become_unprivileged(options, libc, report, errors)
    if options.isolate:
        _enter_namespaces(libc, report, errors, options.chroot)
    else:
        for name in NAMESPACES:
            report[name] = False
        report["chroot"] = False
        errors["namespaces"] = "switched off (isolate=False)"
    if report.get("pid_namespace"):
        _fork_keeper(libc, last_cap, keeper_closes)
    report["capabilities"] = _drop_capabilities(libc, last_cap, errors)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past RLIMIT_FSIZE fails with EFBIG instead of killing us
    report["rlimits"] = _set_rlimits(options, errors)
    report["no_new_privs"] = _prctl(libc, PR_SET_NO_NEW_PRIVS, 1) == 0
    report["landlock"], report["landlock_abi"] = _landlock(libc, options, report, errors) if options.landlock else (False, 0)
    if not options.landlock:
        errors["landlock"] = "switched off"
    report["seccomp"] = (_seccomp(seccomp_lib, SECCOMP_PROFILES[options.seccomp_profile], errors)
                         if seccomp_lib is not None else False)
    if not options.seccomp:
        errors["seccomp"] = "switched off"
    report["uid"], report["gid"] = os.getuid(), os.getgid()
    report["errors"] = errors
    return report


def _prctl(libc: ctypes.CDLL, option: int, arg2: int = 0) -> int:
    return libc.prctl(ctypes.c_int(option), ctypes.c_ulong(arg2), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0))


def _errno_text() -> str:
    return os.strerror(ctypes.get_errno())


def _last_capability() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as handle:
            return int(handle.read())
    except (OSError, ValueError):
        return 63


def _load_libseccomp(errors: dict) -> ctypes.CDLL | None:
    try:
        lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    except OSError:
        errors["seccomp"] = "libseccomp.so.2 is not installed (install libseccomp2)"
        return None
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = (ctypes.c_uint32,)
    lib.seccomp_syscall_resolve_name.restype = ctypes.c_int
    lib.seccomp_syscall_resolve_name.argtypes = (ctypes.c_char_p,)
    lib.seccomp_load.argtypes = (ctypes.c_void_p,)
    lib.seccomp_release.argtypes = (ctypes.c_void_p,)
    lib.seccomp_release.restype = None
    return lib


def _become_unprivileged(options: Options, libc: ctypes.CDLL, report: dict, errors: dict) -> None:
    """Root becomes nobody (or the test uid); anyone else stays who they are."""
    if os.geteuid() != 0:
        if options.become_uid is not None:
            errors["become_uid"] = "ignored: the worker was not started as root"
        return
    uid = options.become_uid if options.become_uid is not None else NOBODY
    gid = options.become_gid if options.become_gid is not None else (uid if options.become_uid is not None else NOBODY)
    try:
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    except OSError as error:
        errors["uid"] = f"could not leave root: {error}"
        return
    # A changed uid makes the process non-dumpable, which leaves /proc/self (uid_map) owned by root.
    _prctl(libc, PR_SET_DUMPABLE, 1)


def _enter_namespaces(libc: ctypes.CDLL, report: dict, errors: dict, chroot: bool) -> None:
    flags = 0
    for flag in NAMESPACES.values():
        flags |= flag
    uid, gid = os.geteuid(), os.getegid()
    if libc.unshare(ctypes.c_int(flags)) != 0:
        errors["namespaces"] = f"unshare: {_errno_text()} (user namespaces unavailable to this user?)"
        for name in NAMESPACES:
            report[name] = False
        report["chroot"] = False
        return
    for name in NAMESPACES:
        report[name] = True
    try:
        for path, text in (("/proc/self/setgroups", "deny"), ("/proc/self/uid_map", f"{uid} {uid} 1"),
                           ("/proc/self/gid_map", f"{gid} {gid} 1")):
            with open(path, "w") as handle:
                handle.write(text)
        _prctl(libc, PR_SET_DUMPABLE, 0)  # nothing outside may ptrace or read /proc of the worker
        if not chroot:  # the training launcher: Landlock, not an empty root, decides what can be opened
            report["chroot"] = False
            return
        os.chroot(".")
        os.chdir("/")
        report["chroot"] = True
    except OSError as error:
        errors["chroot"] = f"{error}"
        report["chroot"] = False


def _fork_keeper(libc: ctypes.CDLL, last_cap: int, closes: tuple[int, ...]) -> None:
    """Fork; the child (PID 1 of the new PID namespace) returns. The parent waits and mirrors its exit."""
    child = os.fork()
    if child == 0:
        _prctl(libc, PR_SET_PDEATHSIG, signal.SIGKILL)  # the keeper is single-threaded: this tracks its life
        os.setsid()  # out of the keeper's process group, so kill(0, ...) reaches nothing but ourselves
        return
    code = 1
    try:  # the keeper never returns into the worker, whatever happens here
        for fd in closes:
            os.close(fd)
        _drop_capabilities(libc, last_cap, {})
        _prctl(libc, PR_SET_NO_NEW_PRIVS, 1)
        while True:
            try:
                _pid, status = os.waitpid(child, 0)
                break
            except InterruptedError:
                continue
        if os.WIFSIGNALED(status):
            signum = os.WTERMSIG(status)
            if signum not in (signal.SIGKILL, signal.SIGSTOP):
                signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)  # so the host reads "killed by SIGKILL" as it would without the keeper
        code = os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1
    finally:
        os._exit(code)


def _drop_capabilities(libc: ctypes.CDLL, last_cap: int, errors: dict) -> bool:
    """Empty the bounding, ambient, effective, permitted and inheritable sets; True if none is held now."""
    for cap in range(last_cap + 1):
        _prctl(libc, PR_CAPBSET_DROP, cap)  # fails without CAP_SETPCAP (no user namespace): nothing to drop then
    libc.prctl(ctypes.c_int(PR_CAP_AMBIENT), ctypes.c_ulong(PR_CAP_AMBIENT_CLEAR_ALL), ctypes.c_ulong(0),
               ctypes.c_ulong(0), ctypes.c_ulong(0))
    header = _CapHeader(LINUX_CAPABILITY_VERSION_3, 0)
    empty = (_CapData * 2)()
    if libc.capset(ctypes.byref(header), empty) != 0:
        errors["capabilities"] = f"capset: {_errno_text()}"
    held = (_CapData * 2)()
    if libc.capget(ctypes.byref(_CapHeader(LINUX_CAPABILITY_VERSION_3, 0)), held) != 0:
        errors["capabilities"] = f"capget: {_errno_text()}"
        return False
    return all(d.effective == 0 and d.permitted == 0 and d.inheritable == 0 for d in held)


def _set_rlimits(options: Options, errors: dict) -> dict:
    unlimited = resource.RLIM_INFINITY
    wanted = {
        "RLIMIT_AS": options.memory_mb * 1024 * 1024 if options.memory_mb > 0 else unlimited,
        "RLIMIT_CPU": options.cpu_s if options.cpu_s > 0 else unlimited,
        "RLIMIT_NOFILE": options.max_open_files,
        "RLIMIT_FSIZE": options.file_size_mb * 1024 * 1024,
        "RLIMIT_CORE": 0,
        # Mechanisms: 0, no child processes: holds for every uid but root's, and root is never kept there.
        "RLIMIT_NPROC": options.nproc,
    }
    applied = {}
    for name, soft in wanted.items():
        # CPU: SIGXCPU at the soft limit (ignored by a PID 1), SIGKILL at the hard one.
        hard = soft + 5 if name == "RLIMIT_CPU" and soft != unlimited else soft
        if soft == unlimited:  # unlimited is only kept, never raised past the current hard limit
            soft = hard = resource.getrlimit(getattr(resource, name))[1]
        try:
            resource.setrlimit(getattr(resource, name), (soft, hard))
            applied[name] = soft
        except (ValueError, OSError) as error:
            errors[name] = str(error)
    return applied


def _landlock(libc: ctypes.CDLL, options: Options, report: dict, errors: dict) -> tuple[bool, int]:
    """A Landlock domain that allows no file access but beneath the read and write paths, no TCP, no signals out."""
    abi = libc.syscall(ctypes.c_long(SYS_LANDLOCK_CREATE_RULESET), None, ctypes.c_size_t(0),
                       ctypes.c_uint32(LANDLOCK_CREATE_RULESET_VERSION))
    if abi < 0:
        errors["landlock"] = f"not offered by this kernel ({_errno_text()})"
        return False, 0
    handled_fs = (1 << 13) - 1  # ABI 1: execute, write, read, read_dir, remove, make_* (13 rights)
    handled_fs |= (1 << 13) if abi >= 2 else 0  # refer
    handled_fs |= (1 << 14) if abi >= 3 else 0  # truncate
    handled_fs |= (1 << 15) if abi >= 5 else 0  # ioctl on devices
    handled_net = 0b11 if abi >= 4 else 0  # bind and connect TCP
    scoped = 0b11 if abi >= 6 else 0  # abstract unix sockets and signals outside the domain
    attr = (ctypes.c_uint64 * 3)(handled_fs, handled_net, scoped)
    ruleset = libc.syscall(ctypes.c_long(SYS_LANDLOCK_CREATE_RULESET), ctypes.byref(attr),
                           ctypes.c_size_t(ctypes.sizeof(attr)), ctypes.c_uint32(0))
    if ruleset < 0:
        errors["landlock"] = f"landlock_create_ruleset: {_errno_text()}"
        return False, abi
    try:
        report["landlock_rules"] = _landlock_rules(libc, ruleset, options, handled_fs, errors)
    except OSError as error:
        os.close(ruleset)
        errors["landlock"] = f"landlock_add_rule: {error}"
        return False, abi
    restricted = libc.syscall(ctypes.c_long(SYS_LANDLOCK_RESTRICT_SELF), ctypes.c_int(ruleset), ctypes.c_uint32(0))
    failure = _errno_text()
    os.close(ruleset)
    if restricted != 0:
        errors["landlock"] = f"landlock_restrict_self: {failure}"
        return False, abi
    if abi < 6:
        errors["landlock"] = f"ABI {abi}: " + ("no TCP or signal scoping" if abi < 4 else "no signal scoping")
    return True, abi


def _landlock_rules(libc: ctypes.CDLL, ruleset: int, options: Options, handled_fs: int, errors: dict) -> int:
    """Allow reads beneath `read_paths` and everything beneath `write_paths`; a path that does not exist is
    skipped (noted in errors). Returns the number of rules added."""
    added = 0
    missing = []
    for paths, rights in ((options.read_paths, LANDLOCK_READ), (options.write_paths, handled_fs)):
        for path in paths:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                missing.append(path)
                continue
            try:
                allowed = rights if stat.S_ISDIR(os.fstat(fd).st_mode) else rights & LANDLOCK_FILE_RIGHTS
                rule = _PathBeneath(allowed & handled_fs, fd)
                if libc.syscall(ctypes.c_long(SYS_LANDLOCK_ADD_RULE), ctypes.c_int(ruleset),
                                ctypes.c_int(LANDLOCK_RULE_PATH_BENEATH), ctypes.byref(rule), ctypes.c_uint32(0)) != 0:
                    raise OSError(ctypes.get_errno(), f"{path}: {_errno_text()}")
                added += 1
            finally:
                os.close(fd)
    if missing:
        errors["landlock_paths"] = "not found, no rule: " + ", ".join(missing[:8])
    return added


def _seccomp(lib: ctypes.CDLL, denied: list[str], errors: dict) -> bool:
    """Deny `denied` with EPERM; libseccomp adds the architecture check (a foreign ABI is killed)."""
    context = lib.seccomp_init(SCMP_ACT_ALLOW)
    if not context:
        errors["seccomp"] = "seccomp_init failed"
        return False
    try:
        for name in denied:
            number = lib.seccomp_syscall_resolve_name(name.encode())
            if number < 0 and number > -100:  # unknown to libseccomp: not a syscall on any architecture it knows
                continue
            # Pseudo-numbers (syscalls this architecture lacks) are accepted and ignored by libseccomp.
            lib.seccomp_rule_add(ctypes.c_void_p(context), ctypes.c_uint32(SCMP_ACT_ERRNO_EPERM), ctypes.c_int(number),
                                 ctypes.c_uint(0))
        result = lib.seccomp_load(context)
    finally:
        lib.seccomp_release(context)
    if result != 0:
        errors["seccomp"] = f"seccomp_load: {os.strerror(-result)}"
        return False
    return True
