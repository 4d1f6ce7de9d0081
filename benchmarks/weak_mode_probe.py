"""What an escaped mechanism can still do in each sandbox mode, measured (as root: python benchmarks/weak_mode_probe.py).

The mechanism is loaded with the static policy skipped (the test-only flag), escapes the runtime layer as in
tests/unit/test_sandbox_hostile.py, and tries: read a 0600 file of the uid the worker runs as, create and
write a file in /tmp, connect to a listener on 127.0.0.1, signal a process of the same uid. "weak" simulates a
kernel without user namespaces, Landlock and seccomp (the worst that `sandbox_allow_weak` accepts).
Output: benchmarks/results/weak-mode/.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "unit"), str(ROOT)]

from test_sandbox_hostile import hostile  # noqa: E402

from mechanisms.sandbox import SandboxHost, SandboxLimits  # noqa: E402

UID = 12345
CREATED = "/tmp/bilevel-weak-created"
MODES = {
    "weak (no namespaces, Landlock, seccomp)": {"become_uid": UID, "isolate": False, "landlock": False, "seccomp": False},
    "no namespaces, Landlock and seccomp on": {"become_uid": UID, "isolate": False},
    "full": {"become_uid": UID},
}
BODY = """
p = self.fresh_posix()
raw, libc = self.libc()
out = {{}}
try:
    out['read_0600_home'] = self.real_import('builtins').open({secret!r}).read()
except Exception as error:
    out['read_0600_home'] = repr(error)[:40]
try:
    p.close(p.open({created!r}, p.O_CREAT | p.O_WRONLY, 0o644))
    out['create_tmp'] = 'created'
    out['write_tmp'] = p.write(p.open({created!r}, p.O_WRONLY), b'x')
except Exception as error:
    out.setdefault('create_tmp', repr(error)[:40])
    out['write_tmp'] = repr(error)[:40]
fd = libc.socket(2, 1, 0)
address = bytes([2, 0, {port_high}, {port_low}, 127, 0, 0, 1]) + bytes(8)
out['connect_loopback [fd, result, errno]'] = [fd, libc.connect(fd, address, 16) if fd >= 0 else -1, raw.get_errno()]
out['signal_same_uid [result, errno]'] = [libc.kill({victim}, 0), raw.get_errno()]
return out
"""


def main() -> None:
    if os.geteuid() != 0:
        raise SystemExit("run as root: the worker becomes uid 12345 and the targets belong to that uid")
    home = tempfile.mkdtemp(prefix="bilevel-weak-")
    secret = os.path.join(home, "secret.txt")
    with open(secret, "w") as handle:
        handle.write("canary")
    for path in (home, secret):
        os.chown(path, UID, UID)
    os.chmod(secret, 0o600)
    victim = subprocess.Popen(["sleep", "60"], user=UID, group=UID)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    body = BODY.format(secret=secret, created=CREATED, port_high=port >> 8, port_low=port & 255, victim=victim.pid)
    try:
        for name, config in MODES.items():
            with SandboxHost(SandboxLimits(**config), allow_unchecked=True) as host:
                host.load("probe", hostile(body), check_policy=False)
                print(f"{name}: {json.dumps(host.call('probe', 'plan', [{}]))}")
            if os.path.exists(CREATED):
                os.remove(CREATED)
    finally:
        victim.kill()
        victim.wait()
        listener.close()
        shutil.rmtree(home)


if __name__ == "__main__":
    main()
