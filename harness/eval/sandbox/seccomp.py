"""The system calls a sandboxed program may not make: a seccomp filter, built here, installed inside.

Denied (EPERM unless noted), for every isolation kind:
- new namespaces: `unshare`, `setns`, namespace flags on `clone`, and `clone3` (ENOSYS, so
  glibc falls back to `clone`, whose flags a filter can read). No nested user namespace
  means no private tmpfs, no mount and no second root inside the sandbox;
- `setsid`: the sandbox is one session, so without cgroups the kernel's per-session CPU
  grouping (autogroup) still gives each program one share, whatever it forks;
- memory that no per-process limit sees: SysV `shmget`, `memfd_create`, `memfd_secret`;
- counters the host shares with every other process, and kernel memory that no limit sees
  without a cgroup (issue 24): Linux AIO contexts (`io_setup` and its calls: `fs.aio-max-nr`
  is host-wide, and one `io_setup(65536)` took all of it), SysV semaphores and message
  queues (`semget`, `msgget`: 1,250 semaphore arrays once held 2.5 GB of kernel memory),
  POSIX message queues (`mq_open`), inotify and fanotify instances (per-user counters, and
  each watch ~1 KB of kernel memory);
- sockets of any family but AF_UNIX (`socket`, `socketpair`): TCP buffers inside the
  sandbox's own network namespace once queued 262 MB of host `tcp_mem` past a 256 MB limit.
  `multiprocessing` and `asyncio` need only AF_UNIX, whose buffers the memory cgroup charges;
- `setsockopt(SOL_SOCKET, SO_SNDBUF/SO_RCVBUF and their FORCE forms)`: a unix socket's
  queue is bounded by its send buffer, so without a cgroup it stays at the host's default
  (`net.core.wmem_default`, 208 KB here) instead of `wmem_max` (4 MB here); likewise
  `fcntl(F_SETPIPE_SZ)`, so a pipe keeps its 64 KB instead of `fs.pipe-max-size` (1 MB);
- kernel surfaces no benchmark program needs: mount API, `ptrace`, keyrings, `bpf`,
  `perf_event_open`, `userfaultfd`, io_uring, module and kexec loading.
With `processes=False` (no cgroup bounds the sandbox as a whole) `fork`, `vfork` and `clone`
without CLONE_THREAD are denied too: threads share one address space, so the per-process
RLIMIT_AS is then a whole-sandbox limit.

Why by hand: libseccomp's Python binding is a system package (python3-seccomp), not on PyPI
or in every virtual environment, and this filter is about 150 fixed instructions, checked by
tests that make each denied call from inside the sandbox. Architectures other than x86_64 and
aarch64 get no filter, and the sandbox's `describe()` says so.
"""

from __future__ import annotations

import errno
import platform
import struct

# linux/filter.h, linux/seccomp.h, linux/audit.h
LD_W_ABS, JEQ_K, JGE_K, JSET_K, RET_K = 0x20, 0x15, 0x35, 0x45, 0x06
RET_ALLOW, RET_ERRNO = 0x7FFF0000, 0x00050000
NR_OFFSET, ARCH_OFFSET = 0, 4  # struct seccomp_data
ARG_OFFSETS = (16, 24, 32)  # the low words of args[0..2] (little-endian; the kernel reads these as ints)
AF_UNIX, SOL_SOCKET = 1, 1
SOCKET_BUFFERS = (7, 8, 32, 33)  # SO_SNDBUF, SO_RCVBUF, SO_SNDBUFFORCE, SO_RCVBUFFORCE
F_SETPIPE_SZ = 1031
CLONE_THREAD = 0x00010000
CLONE_NAMESPACES = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000
X32_BIT = 0x40000000

ARCHES = {  # machine: (AUDIT_ARCH, {syscall: number})
    "x86_64": (0xC000003E, {
        "unshare": 272, "setns": 308, "clone": 56, "clone3": 435, "fork": 57, "vfork": 58, "setsid": 112,
        "shmget": 29, "memfd_create": 319, "memfd_secret": 447, "mount": 165, "umount2": 166, "pivot_root": 155,
        "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
        "mount_setattr": 442, "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "add_key": 248,
        "request_key": 249, "keyctl": 250, "bpf": 321, "perf_event_open": 298, "userfaultfd": 323,
        "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "init_module": 175,
        "finit_module": 313, "delete_module": 176, "kexec_load": 246, "kexec_file_load": 320,
        "io_setup": 206, "io_destroy": 207, "io_getevents": 208, "io_submit": 209, "io_cancel": 210,
        "io_pgetevents": 333, "semget": 64, "msgget": 68, "mq_open": 240, "inotify_init": 253,
        "inotify_init1": 294, "fanotify_init": 300, "socket": 41, "socketpair": 53, "setsockopt": 54, "fcntl": 72,
    }),  # fmt: skip
    "aarch64": (0xC00000B7, {
        "unshare": 97, "setns": 268, "clone": 220, "clone3": 435, "setsid": 157, "shmget": 194,
        "memfd_create": 279, "memfd_secret": 447, "mount": 40, "umount2": 39, "pivot_root": 41, "open_tree": 428,
        "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442,
        "ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271, "add_key": 217, "request_key": 218,
        "keyctl": 219, "bpf": 280, "perf_event_open": 241, "userfaultfd": 282, "io_uring_setup": 425,
        "io_uring_enter": 426, "io_uring_register": 427, "init_module": 105, "finit_module": 273,
        "delete_module": 106, "kexec_load": 104, "kexec_file_load": 294, "io_setup": 0, "io_destroy": 1,
        "io_submit": 2, "io_cancel": 3, "io_getevents": 4, "io_pgetevents": 292, "semget": 190, "msgget": 186,
        "mq_open": 180, "inotify_init1": 26, "fanotify_init": 262, "socket": 198, "socketpair": 199,
        "setsockopt": 208, "fcntl": 25,
    }),  # fmt: skip
}
SPECIAL = {"clone", "clone3", "fork", "vfork", "socket", "socketpair", "setsockopt", "fcntl"}  # decided by their arguments


def _op(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def _ret(action: int) -> bytes:
    return _op(RET_K, action)


def build(processes: bool, machine: str | None = None) -> bytes | None:
    """The filter as `struct sock_filter[]` bytes, or None where the architecture is unknown."""
    arch = ARCHES.get(machine or platform.machine())
    if arch is None:
        return None
    audit_arch, numbers = arch
    deny = RET_ERRNO | errno.EPERM
    denied = [nr for name, nr in numbers.items() if name not in SPECIAL]
    if not processes:
        denied += [numbers[n] for n in ("fork", "vfork") if n in numbers]
    program = [_op(LD_W_ABS, ARCH_OFFSET), _op(JEQ_K, audit_arch, 1, 0), _ret(deny), _op(LD_W_ABS, NR_OFFSET)]
    if audit_arch == ARCHES["x86_64"][0]:
        program += [_op(JGE_K, X32_BIT, 0, 1), _ret(deny)]  # the x32 ABI: other numbers, same calls
    program += [_op(JEQ_K, nr, 0, 1) + _ret(deny) for nr in denied]
    program += [_op(JEQ_K, numbers["clone3"], 0, 1), _ret(RET_ERRNO | errno.ENOSYS)]
    clone_rules = [_op(LD_W_ABS, ARG_OFFSETS[0]), _op(JSET_K, CLONE_NAMESPACES, 0, 1), _ret(deny)]
    if not processes:
        clone_rules += [_op(JSET_K, CLONE_THREAD, 1, 0), _ret(deny)]
    clone_rules += [_ret(RET_ALLOW)]
    unix_only = [_op(LD_W_ABS, ARG_OFFSETS[0]), _op(JEQ_K, AF_UNIX, 0, 1), _ret(RET_ALLOW), _ret(deny)]
    buffers = _none_of(ARG_OFFSETS[2], SOCKET_BUFFERS, deny)
    fixed_buffers = [_op(LD_W_ABS, ARG_OFFSETS[1]), _op(JEQ_K, SOL_SOCKET, 0, len(buffers) - 1)] + buffers
    fixed_pipes = _none_of(ARG_OFFSETS[1], (F_SETPIPE_SZ,), deny)
    for name, rules in (("clone", clone_rules), ("socket", unix_only), ("socketpair", unix_only),
                        ("setsockopt", fixed_buffers), ("fcntl", fixed_pipes)):  # fmt: skip
        # Each block ends in a return, so a call that is not `name` jumps over it to the next
        # (the accumulator still holds the call's number there).
        program += [_op(JEQ_K, numbers[name], 0, len(rules)), *rules]
    return b"".join(program + [_ret(RET_ALLOW)])


def _none_of(offset: int, values: tuple[int, ...], action: int) -> list[bytes]:
    """Load an argument; `action` if it equals one of `values`, else allow (the last op)."""
    ops = [_op(LD_W_ABS, offset)]
    for index, value in enumerate(values):
        ops.append(_op(JEQ_K, value, len(values) - index - 1, 0))
    ops[-1] = _op(JEQ_K, values[-1], 0, 1)
    return ops + [_ret(action), _ret(RET_ALLOW)]
