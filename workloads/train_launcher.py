"""Training launcher: confines itself with the mechanism sandbox's OS layer, then execs the training command.

Run by path, standard library only, by the interpreter that will train (so its own prefix and site-packages
are what Landlock lets it read):

    python -I -B train_launcher.py SPEC_JSON -- COMMAND ARGS...      (or SPEC_JSON --probe)

SPEC: {"confinement_path": mechanisms/sandbox_os.py, "read_paths": [...], "write_paths": [run folder, tmp],
"allow_weak": bool, "options": {sandbox_os knobs, tests only}}. It loads sandbox_os.py by path and calls
`confine` with the training's options (TRAINING_OPTIONS): user, mount, PID, network, IPC and UTS
namespaces without chroot and without leaving root (the run folder stays the caller's); no capabilities;
rlimits a training tolerates; no_new_privs; Landlock: read and execute beneath the interpreter, its
site-packages, the workload's paths and the system libraries, everything beneath the run folder, the private
tmp dir and the GPU devices, no TCP, no signals out; seccomp's training list. `confine` forks: this process
stays as the keeper, and the child, PID 1 of the new PID namespace, execs the command (namespaces, Landlock,
seccomp and no_new_privs survive exec). When PID 1 exits the kernel kills everything left in its namespace,
so a daemonised child cannot outlive the training. A protection that is missing (REQUIRED) makes it refuse
with one line on stderr and exit code REFUSED, unless `allow_weak`.
"""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import site
import sys

REFUSED = 125
PROBE_FLAG = "--probe"
# What must hold (Landlock alone keeps ~/.ssh unreadable and the file system read-only: there is no chroot).
REQUIRED = {
    "landlock": "Landlock file rules (kernel >= 5.13 with landlock in the lsm= list)",
    "no_new_privs": "no_new_privs",
    "capabilities": "no capabilities",
}
NO_NETWORK = "no network (a network namespace, or Landlock ABI >= 4 for TCP)"
# The training's limits. No address-space bound by default: CUDA reserves far more virtual memory than it uses,
# and so do glibc's per-thread arenas; memory is bounded by the machine (the wall-clock timeout bounds time).
TRAINING_OPTIONS = {
    "drop_root": False,  # the run folder belongs to the caller; root keeps uid 0, without capabilities
    "chroot": False,  # the interpreter must stay reachable: Landlock decides what can be opened
    "memory_mb": 0,  # RLIMIT_AS unlimited (see above); set `memory_mb` in `options` to bound it
    "cpu_s": 0,  # RLIMIT_CPU unlimited: the host's wall-clock timeout kills the process group
    "max_open_files": 4096,
    "file_size_mb": 16 * 1024,  # a checkpoint fits, filling the disk through one file does not
    "nproc": 16384,  # threads count: torch starts one per core, and more for data loading
    "seccomp_profile": "training",
}
SYSTEM_READ = ("/usr", "/lib", "/lib64", "/lib32", "/libx32", "/bin", "/sbin", "/proc", "/sys")
# Of /etc only what a Python, glibc and CUDA read: never the whole of it (root still owns /etc/shadow).
ETC_READ = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "timezone", "passwd", "group",
            "nsswitch.conf", "host.conf", "hosts", "os-release", "mime.types", "ssl", "ca-certificates",
            "alternatives", "fonts", "matplotlibrc", "OpenCL", "vulkan", "nvidia", "glvnd", "magic", "gai.conf")
DEVICES_WRITE = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")
# CUDA opens these read-write and drives them with ioctls (Landlock ABI >= 5 handles device ioctls).
GPU_DEVICE_GLOBS = ("/dev/nvidia*", "/dev/nvidia-caps", "/dev/dri")


def interpreter_paths() -> list[str]:
    """What this interpreter reads to start and import: its prefixes, the directory of its real executable,
    every sys.path entry (site-packages, .pth additions such as editable installs) and the user site."""
    paths = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
             os.path.dirname(os.path.realpath(sys.executable)), os.path.dirname(sys.executable)]
    paths += [entry for entry in sys.path if entry]
    user_site = site.getusersitepackages()
    if os.path.isdir(user_site):
        paths.append(user_site)
    return paths


def gpu_device_paths() -> list[str]:
    """The NVIDIA and DRM device nodes present on this machine."""
    return sorted({path for pattern in GPU_DEVICE_GLOBS for path in glob.glob(pattern)})


def landlock_paths(read: list[str], write: list[str]) -> tuple[list[str], list[str]]:
    """The Landlock rule set of a training: (read-only paths, read-write paths), existing ones only, each once."""
    reads = [*interpreter_paths(), *SYSTEM_READ, *(f"/etc/{name}" for name in ETC_READ), *read]
    writes = [*write, *DEVICES_WRITE, *gpu_device_paths()]
    return _existing(reads), _existing(writes)


def _existing(paths: list[str]) -> list[str]:
    return list(dict.fromkeys(os.path.abspath(p) for p in paths if os.path.exists(p)))


def missing_protections(report: dict) -> list[str]:
    """What the training sandbox lacks on this machine (empty when complete), each in words."""
    missing = [label for key, label in REQUIRED.items() if report.get(key) is not True]
    if not report.get("network_namespace") and not (report.get("landlock") and int(report.get("landlock_abi", 0)) >= 4):
        missing.append(NO_NETWORK)
    return missing


def _load_confinement(path: str):
    spec = importlib.util.spec_from_file_location("_bilevel_sandbox_os", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"bilevel: cannot load the sandbox's OS layer from {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str]) -> int:
    if len(argv) < 2 or (argv[1] != PROBE_FLAG and (argv[1] != "--" or len(argv) < 3)):
        print("usage: train_launcher.py SPEC_JSON (--probe | -- COMMAND ARGS...)", file=sys.stderr)
        return 2
    spec = json.loads(argv[0])
    confinement = _load_confinement(spec["confinement_path"])
    reads, writes = landlock_paths(list(spec.get("read_paths", [])), list(spec.get("write_paths", [])))
    options = {**TRAINING_OPTIONS, "read_paths": reads, "write_paths": writes, **spec.get("options", {})}
    env = dict(os.environ)
    user_site = site.getusersitepackages()
    if os.path.isdir(user_site):  # HOME moves below: keep the user's site-packages where the interpreter looks
        env["PYTHONUSERBASE"] = site.getuserbase()
    report = confinement.confine(confinement.Options(options))  # from here on: PID 1 of the new namespace
    missing = missing_protections(report)
    if argv[1] == PROBE_FLAG:
        print(json.dumps({"report": report, "missing": missing}))
        return 0
    if missing and not spec.get("allow_weak"):
        print(f"bilevel: training sandbox refused: missing {'; '.join(missing)}. Set BILEVEL_SANDBOX_ALLOW_WEAK=1 "
              "to train anyway, or BILEVEL_TRAIN_SANDBOX=never", file=sys.stderr, flush=True)
        return REFUSED
    tmp = spec.get("tmp_dir")
    if tmp:  # caches and temporary files go to the private directory, never to the (unreadable) home
        env.update(TMPDIR=tmp, HOME=tmp)
    command = argv[2:]
    try:
        os.execvpe(command[0], command, env)
    except OSError as error:
        print(f"bilevel: cannot start {command[0]} in the training sandbox: {error}", file=sys.stderr, flush=True)
    return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
