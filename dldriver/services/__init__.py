"""Local servers for demos and tests: SeaweedFS (S3) and Azurite (Azure Blob) on 127.0.0.1.

`dldriver services start|stop|status|env [s3|azure|all]` calls manage(). `start` and `env` print
`export NAME=value` lines on stdout (messages go to stderr), so `eval "$(dldriver services start)"`
points boto3, the Azure SDK and dl-driver at the servers. `status` exits 0 when every named server
runs, 3 otherwise (as `systemctl status` does).
"""
from __future__ import annotations

import shlex
import sys

from dldriver.services import azurite, seaweedfs

SERVICES = {"s3": seaweedfs, "azure": azurite}
LABELS = {"s3": "SeaweedFS S3", "azure": "Azurite Blob"}
NOT_RUNNING = 3


def _names(which: str) -> list[str]:
    return list(SERVICES) if which == "all" else [which]


def start_s3(state_dir=None, port: int | None = None, timeout: float = 60, attached: bool = False) -> dict[str, str]:
    """Start SeaweedFS (idempotent) and return the environment that points clients at it.

    `attached`: the server also stops when this process dies (test sessions); see process.spawn."""
    return seaweedfs.env_for(seaweedfs.start(state_dir, port, timeout, attached)["port"])


def start_azure(state_dir=None, port: int | None = None, timeout: float = 60,
                attached: bool = False) -> dict[str, str]:
    """Start Azurite (idempotent) and return the environment that points clients at it."""
    return azurite.env_for(azurite.start(state_dir, port, timeout, attached)["port"])


def stop_s3(state_dir=None) -> bool:
    """Stop SeaweedFS by its pid; False if it was not running."""
    return seaweedfs.stop(state_dir) is not None


def stop_azure(state_dir=None) -> bool:
    """Stop Azurite by its pid; False if it was not running."""
    return azurite.stop(state_dir) is not None


def service_env(which: str = "all", state_dir=None) -> dict[str, str]:
    """The environment variables for the named servers: the running ones' ports, else the configured."""
    env = {}
    for name in _names(which):
        module = SERVICES[name]
        state = module.status(state_dir)
        env.update(module.env_for(state["port"] if state else module.configured_port()))
    return env


def _print_env(env: dict[str, str]) -> None:
    for key, value in env.items():
        print(f"export {key}={shlex.quote(value)}")


def manage(action: str, which: str = "all", state_dir=None) -> int:
    """The `services` subcommand; returns the exit code."""
    code = 0
    for name in _names(which):
        module, label = SERVICES[name], LABELS[name]
        if action == "start":
            before = module.status(state_dir)
            state = before or module.start(state_dir)
            verb = "already running" if before else "started"
            print(f"{name}: {label} {verb} (pid {state['pid']}) at {state['endpoint']}; data and log in "
                  f"{state['folder']}", file=sys.stderr)
        elif action == "stop":
            state = module.stop(state_dir)
            print(f"{name}: stopped (pid {state['pid']})" if state else f"{name}: not running", file=sys.stderr)
        elif action == "status":
            state = module.status(state_dir)
            if state:
                print(f"{name}: running (pid {state['pid']}) at {state['endpoint']}; data and log in {state['folder']}")
            else:
                print(f"{name}: stopped")
                code = NOT_RUNNING
        elif action != "env":
            raise ValueError(f"unknown services action {action!r}")
    if action in ("start", "env"):
        _print_env(service_env(which, state_dir))
    return code
