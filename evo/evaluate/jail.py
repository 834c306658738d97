"""The first process of an evaluation's namespaces: it shapes the variant's view, then runs it.

`python -m evo.evaluate.jail SPEC -- ENTRY...` runs as process 1 of a new PID namespace, in new
user, mount and (unless the target allows the network) network namespaces, made by util-linux's
`unshare` (evo.evaluate.isolation builds the command). Before it starts the entry it:
- makes every mount read-only, except a private /tmp and /dev/shm (fresh tmpfs, gone with the
  namespace), the namespace's own /proc (CUDA needs it writable) and the folders SPEC names
  writable (the working copy, the result channel, the cache or the parts of it the phase may
  write), at the same paths as outside (or, those it names moved, at another path); the folders
  it names visible, and Python's own folders that lie under /tmp (a virtual environment there),
  stay visible, read-only;
- makes the target's fixed files read-only inside the working copy;
- puts an empty, read-only folder over each folder SPEC names hidden (held-out data: absent,
  not merely read-only);
- brings up loopback in the new network namespace (which has no other interface);
- gives up every capability, for good (bounding set, inheritable and ambient sets emptied, no
  new privileges): the variant, root of its user namespace or not, cannot undo any of this.
It then starts the entry, reaps every process, and when the entry ends, writes the entry's exit
status and peak memory to the pipe SPEC names and exits: the kernel kills whatever is left in a
PID namespace whose first process is gone, `setsid` and double forks included.

Standard library only: it starts before anything else in the evaluation.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import resource
import socket
import struct
import sys

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_NOATIME, MS_NODIRATIME, MS_BIND = 32, 1024, 2048, 4096
MS_REC, MS_PRIVATE, MS_RELATIME, MS_STRICTATIME = 1 << 14, 1 << 18, 1 << 21, 1 << 24
# Per-mount flags that a remount must repeat (a user namespace may not clear locked ones).
KEPT_FLAGS = {
    "nosuid": MS_NOSUID,
    "nodev": MS_NODEV,
    "noexec": MS_NOEXEC,
    "noatime": MS_NOATIME,
    "nodiratime": MS_NODIRATIME,
    "relatime": MS_RELATIME,
    "strictatime": MS_STRICTATIME,
}
PRIVATE_TMPFS = ("/tmp", "/dev/shm")
PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 24, 38, 47, 4
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_SYS_CAPSET = {"x86_64": 126, "aarch64": 91}

libc = ctypes.CDLL(None, use_errno=True)


def main(argv: list[str]) -> int:
    spec, entry = json.loads(argv[0]), argv[2:]  # argv[1] is "--"
    keep, visible, moved = spec["writable"], spec["visible"], spec["moved"]
    python = [p for p in _python_folders(under=PRIVATE_TMPFS) if not _inside(p, keep + visible)]
    shown = [*python, *visible, *keep]  # outer folders first: a writable one may lie inside
    held = {path: os.open(path, os.O_PATH | os.O_DIRECTORY) for path in shown}
    held |= {path: os.open(source, os.O_PATH | os.O_DIRECTORY) for path, source in moved.items()}
    keep = [*keep, *moved]
    _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing done here reaches the host
    for path in PRIVATE_TMPFS:
        _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
    for path, fd in held.items():  # the same folders, at the same paths, over the new /tmp
        os.makedirs(path, exist_ok=True)
        _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
        os.close(fd)
    for point, options in _mounts():
        # The namespace's own /proc (unshare --mount-proc) shows nothing of the host, and CUDA's
        # driver does not initialise where it is read-only (cuInit 304): it stays writable.
        if not (point in (*PRIVATE_TMPFS, *keep, "/proc") or _inside(point, ["/proc", *keep])):
            _read_only(point, options)
    for path in spec["read_only"]:
        _mount(path, path, None, MS_BIND | MS_REC)
        _read_only(path, "rw")
    for path in spec["hidden"]:  # held-out data: an empty folder in its place
        if os.path.isdir(path):
            _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_RDONLY, "size=4k,mode=555")
    os.chdir(os.getcwd())  # the working copy through its writable mount, not the read-only one
    if spec["loopback"]:
        _loopback_up()
    _drop_capabilities()
    with os.fdopen(spec["status_fd"], "w") as status:
        os.set_inheritable(status.fileno(), False)
        entry_pid = os.posix_spawnp(entry[0], entry, os.environ)
        code = None
        while code is None:  # reap every orphan until the entry itself is done
            pid, wait_status = os.wait()
            if pid == entry_pid:
                code = os.waitstatus_to_exitcode(wait_status)
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        status.write(json.dumps({"returncode": code, "peak_rss_mb": peak_kib / 1024}))
    return 0


def _python_folders(under: tuple[str, ...]) -> list[str]:
    """The folders the entry's Python needs (this one's: its prefixes and its path) that lie
    under `under`, outermost only: a virtual environment in /tmp stays visible, read-only."""
    found = {
        os.path.realpath(path)
        for path in (sys.prefix, sys.base_prefix, sys.exec_prefix, *sys.path)
        if path and os.path.isdir(path)
    }
    inside = sorted(path for path in found if _inside(path, under))
    return [path for path in inside if not _inside(path, [p for p in inside if p != path])]


def _inside(path: str, folders: list[str] | tuple[str, ...]) -> bool:
    return any(path.startswith(folder.rstrip("/") + "/") for folder in folders)


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    encode = lambda s: None if s is None else s.encode()  # noqa: E731
    if libc.mount(encode(source), target.encode(), encode(fstype), flags, encode(data)) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"mount {source} on {target}: {os.strerror(errno)}")


def _mounts() -> list[tuple[str, str]]:
    """(mount point, per-mount options) of every mount this process sees."""
    found = []
    with open("/proc/self/mountinfo") as info:
        for line in info:
            fields = line.split()
            point = fields[4].encode().decode("unicode_escape")  # "\040" is a space
            found.append((point, fields[5]))
    return found


def _read_only(point: str, options: str) -> None:
    flags = MS_REMOUNT | MS_BIND | MS_RDONLY
    for option in options.split(","):
        flags |= KEPT_FLAGS.get(option, 0)
    try:
        _mount(None, point, None, flags)
    except OSError as e:  # a mount hidden under another one, or gone meanwhile
        if e.errno not in (2, 22):  # ENOENT, EINVAL
            raise


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sH14s", b"lo", 0, b"")
        flags = struct.unpack("16sH14s", fcntl.ioctl(s, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14s", b"lo", flags | IFF_UP, b""))


def _drop_capabilities() -> None:
    with open("/proc/sys/kernel/cap_last_cap") as f:
        last = int(f.read())
    for capability in range(last + 1):
        libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0)
    libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    header = struct.pack("Ii", _LINUX_CAPABILITY_VERSION_3, 0)
    nothing = bytes(24)  # two (effective, permitted, inheritable) triples of 32 bits, all zero
    number = _SYS_CAPSET.get(os.uname().machine)
    if number is None or libc.syscall(number, header, nothing) != 0:
        raise OSError(ctypes.get_errno(), "capset: cannot give up the capabilities")
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl: cannot set no_new_privs")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
