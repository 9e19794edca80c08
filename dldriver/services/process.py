"""Detached server processes tracked by a state file: start, readiness wait, stop by pid.

Each service keeps a folder of its own under the state dir: `state.json` (pid, port, endpoint),
`server.log` (its stdout and stderr) and its data. Servers start in a new session so that they outlive
the command that started them (one Snakemake rule starts them, another stops them). They are stopped
by the recorded pid only, after checking that the pid still runs the same program.
"""
from __future__ import annotations

import ctypes
import json
import os
import random
import signal
import socket
import subprocess
import time
from pathlib import Path

from dldriver.errors import ServiceError

STATE_FILE = "state.json"
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
LOG_FILE = "server.log"

# Popen handles of the servers this process started, so that stop() can reap them (no zombies in a
# test session that starts and stops its own servers).
_children: dict[int, subprocess.Popen] = {}


def default_state_dir() -> Path:
    """$DLDRIVER_SERVICES_DIR, else .services in the repository (or the working folder if installed)."""
    env = os.environ.get("DLDRIVER_SERVICES_DIR")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[2]
    return (repo if (repo / "pyproject.toml").exists() else Path.cwd()) / ".services"


def service_folder(state_dir, name: str) -> Path:
    folder = Path(state_dir) if state_dir else default_state_dir()
    for part in (folder, folder / name):
        if part.exists() and not part.is_dir():
            raise ServiceError(f"state folder {part}: is a file, not a folder; name a folder with "
                               "--state-dir or DLDRIVER_SERVICES_DIR")
    return folder.resolve() / name


def read_state(folder: Path) -> dict | None:
    """The recorded state, None when there is none; a damaged state file is one line naming it."""
    path = folder / STATE_FILE
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise ServiceError(f"{path}: damaged state file ({err}); stop the server it records by hand if "
                           "one runs, then delete the file") from None
    for key in ("pid", "port"):
        value = state.get(key) if isinstance(state, dict) else None
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ServiceError(f"{path}: damaged state file ({key} {value!r} is not a positive whole number); "
                               "stop the server it records by hand if one runs, then delete the file")
    return state


def port_from_env(env_var: str, default: int, span: int = 1) -> int:
    """The port named by `env_var`, else `default`; one line when it is not a port (with `span`
    consecutive ports from it, as SeaweedFS takes)."""
    text = os.environ.get(env_var)
    if not text:
        return default
    top = 65535 - (span - 1)
    if not text.strip().isdigit() or not 1 <= int(text) <= top:
        raise ServiceError(f"environment variable {env_var}={text!r}: expected a port number in 1..{top}"
                           + (f" (the server uses {span} ports from it)" if span > 1 else ""))
    return int(text)


def write_state(folder: Path, state: dict) -> None:
    tmp = folder / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state, indent=1) + "\n")
    os.replace(tmp, folder / STATE_FILE)


def clear_state(folder: Path) -> None:
    (folder / STATE_FILE).unlink(missing_ok=True)


def is_alive(pid: int, marker: str) -> bool:
    """True if `pid` runs and its command line contains `marker` (guards against a reused pid)."""
    child = _children.get(pid)
    if child is not None:
        # Our own child: ask it directly (just after exec, /proc/PID/cmdline may still read empty).
        return child.poll() is None
    try:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                return False
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return marker.encode() in f.read()
    except (OSError, IndexError):
        return False


def running_state(folder: Path, marker: str) -> dict | None:
    """The recorded state if its server still runs; a stale state file is removed."""
    state = read_state(folder)
    if state and is_alive(int(state["pid"]), marker):
        return state
    if state:
        clear_state(folder)
    return None


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR as servers set it: a port with connections in TIME_WAIT still counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def ephemeral_ports_start(path: str = "/proc/sys/net/ipv4/ip_local_port_range") -> int:
    """The first port the kernel hands out to outgoing connections (32768 unless configured)."""
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port_block(size: int) -> int:
    """The first of `size` consecutive ports free on 127.0.0.1 (for instances beside the default ones).

    Below the ephemeral range where it can: a port found free there stays free until the server binds
    it (or binds it again after a restart), where any outgoing connection could take an ephemeral one.
    """
    rng = random.Random()
    low, high = 20000, ephemeral_ports_start()
    if high - low < 1000 + size:
        high = 60000
    for _ in range(100):
        base = rng.randrange(low, high - size)
        if not any(port_in_use(p) for p in range(base, base + size)):
            return base
    raise ServiceError(f"no {size} consecutive free ports found on 127.0.0.1")


def check_ports_free(name: str, ports: list[int], env_var: str) -> None:
    busy = [p for p in ports if port_in_use(p)]
    if busy:
        raise ServiceError(f"{name}: port(s) {', '.join(map(str, busy))} on 127.0.0.1 already in use by another "
                           f"program; choose other ports with {env_var}")


def _die_with_parent():
    """A preexec_fn that makes the kernel send SIGTERM to the child when its parent dies (Linux)."""
    libc = ctypes.CDLL(None, use_errno=True)  # loaded before the fork, called in the child
    return lambda: libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(cmd: list[str], folder: Path, env: dict | None = None, attached: bool = False) -> int:
    """Start `cmd` in its own session, output to server.log, and return its pid.

    By default the server outlives this process (the CLI starts it, a later command stops it).
    `attached` servers (a test session's) are also terminated when this process dies, even by SIGKILL,
    so that a killed test run never leaves servers behind.
    """
    with open(folder / LOG_FILE, "ab") as log:
        try:
            proc = subprocess.Popen(cmd, cwd=folder, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                    preexec_fn=_die_with_parent() if attached else None)
        except OSError as err:
            raise ServiceError(f"cannot run {cmd[0]}: {err.strerror}") from err
    _children[proc.pid] = proc
    return proc.pid


def log_tail(folder: Path, lines: int = 15) -> str:
    try:
        text = (folder / LOG_FILE).read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(empty log)"


def wait_ready(name: str, pid: int, marker: str, folder: Path, probe, timeout: float) -> None:
    """Call `probe()` until it returns True; fail with the log tail if the server dies or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_alive(pid, marker):
            clear_state(folder)
            raise ServiceError(f"{name}: the server exited during start-up; log {folder / LOG_FILE}: "
                               f"{log_tail(folder)}")
        if probe():
            return
        time.sleep(0.2)
    stop_pid(pid, marker)
    clear_state(folder)
    raise ServiceError(f"{name}: not ready after {timeout:.0f} s; log {folder / LOG_FILE}: {log_tail(folder)}")


def launch(name: str, marker: str, folder: Path, cmd: list[str], port: int, endpoint: str, probe,
           timeout: float, env: dict | None = None, attached: bool = False) -> dict:
    """Spawn a server, record its state ({pid, port, endpoint, folder}: what status and stop read), and
    wait until `probe()` says it serves; return the state."""
    pid = spawn(cmd, folder, env, attached)
    state = {"pid": pid, "port": port, "endpoint": endpoint, "folder": str(folder)}
    write_state(folder, state)
    wait_ready(name, pid, marker, folder, probe, timeout)
    return state


def stop_pid(pid: int, marker: str, timeout: float = 15.0) -> None:
    """SIGTERM, wait up to `timeout`, then SIGKILL; only if `pid` still runs the expected program."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        if not is_alive(pid, marker):
            break
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            break
        if _wait_gone(pid, marker, wait):
            break
    if is_alive(pid, marker):
        raise ServiceError(f"pid {pid} ({marker}) did not exit after SIGTERM and SIGKILL")
    _children.pop(pid, None)


def _wait_gone(pid: int, marker: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_alive(pid, marker):
            return True
        time.sleep(0.1)
    return False


def stop_recorded(folder: Path, marker: str) -> dict | None:
    """Stop the server recorded in `folder`; return the state it had, or None if it was not running."""
    state = running_state(folder, marker)
    if state:
        stop_pid(int(state["pid"]), marker)
        clear_state(folder)
    return state
