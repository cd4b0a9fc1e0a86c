"""One worker call in a child process: a deadline, a memory cap, and its answer redacted by value.

Children come from a fork server that has already imported the actions (a call starts in milliseconds, not
the seconds Dagster's imports take), and the fork server itself never runs a call, so a call that leaks
memory or hangs takes only its own process with it. The child caps its address space (RLIMIT_AS) at what it
had when it started plus `memory_mb`; at the deadline the parent kills it.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import resource
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from pydantic import ValidationError

from connectors.secrets import Resolver

log = logging.getLogger(__name__)

_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["aggregator.worker.actions"])


@dataclass(frozen=True)
class CallLimits:
    timeout_s: float
    memory_mb: int


@dataclass(frozen=True)
class CallResult:
    status: int
    body: Any


def _noop() -> None:
    pass


def warm_up() -> None:
    """Start the fork server and wait for its imports (one empty child), so they do not count against the
    first call's deadline."""
    child = _CONTEXT.Process(target=_noop, daemon=True)
    child.start()
    child.join()
    child.close()


def _address_space() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _redact_tree(value: Any, resolver: Resolver) -> Any:
    if isinstance(value, str):
        return resolver.redact(value)
    if isinstance(value, dict):
        return {_redact_tree(k, resolver): _redact_tree(v, resolver) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_tree(v, resolver) for v in value]
    return value


class _RedactingFilter(logging.Filter):
    """Every log line of a call passes the call's redactor: library messages may quote what they were given."""

    def __init__(self, resolver: Resolver) -> None:
        super().__init__()
        self.resolver = resolver

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.resolver.redact(record.getMessage())
        record.args = ()
        if record.exc_info:
            record.exc_text = self.resolver.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def _child(name: str, payload: dict[str, Any], memory_mb: int, out: Connection) -> None:
    from aggregator.worker.actions import ACTIONS, CallError, first_line

    cap = _address_space() + memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    resolver = Resolver()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(_RedactingFilter(resolver))
    try:
        model, action = ACTIONS[name]
        result = CallResult(200, action(model.model_validate(payload), resolver))
    except CallError as exc:
        result = CallResult(exc.status, {"detail": exc.detail})
    except ValidationError as exc:
        result = CallResult(400, {"detail": f"bad request: {first_line(exc)}"})
    except MemoryError:
        result = CallResult(507, {"detail": f"the call needed more than its {memory_mb} MB memory cap "
                                            "(AGGREGATOR_WORKER_CALL_MEMORY_MB)"})
    except Exception as exc:
        log.exception("worker call %s failed", name)
        result = CallResult(500, {"detail": f"the call failed: {type(exc).__name__}: {first_line(exc)}"})
    try:
        out.send_bytes(json.dumps({"status": result.status, "body": _redact_tree(result.body, resolver)},
                                  default=str).encode())
    except MemoryError:
        out.send_bytes(json.dumps({"status": 507, "body": {"detail": "the answer exceeded the memory cap"}}).encode())
    finally:
        out.close()


def run_call(name: str, payload: dict[str, Any], limits: CallLimits) -> CallResult:
    """Run action `name` in a child process; 504 at the deadline (the child is killed), 507 over the memory
    cap, otherwise the action's own status and (redacted) body."""
    receiver, sender = _CONTEXT.Pipe(duplex=False)
    child = _CONTEXT.Process(target=_child, args=(name, payload, limits.memory_mb, sender), daemon=True)
    child.start()
    sender.close()
    try:
        if not receiver.poll(limits.timeout_s):
            return CallResult(504, {"detail": f"the call did not finish within {limits.timeout_s:g} s "
                                              "(AGGREGATOR_WORKER_CALL_TIMEOUT_S); it was stopped"})
        try:
            answer = json.loads(receiver.recv_bytes())
        except EOFError:
            child.join(5)
            code = child.exitcode
            return CallResult(507, {"detail": f"the call's process died (exit code {code}); it likely "
                                              f"exceeded its {limits.memory_mb} MB memory cap "
                                              "(AGGREGATOR_WORKER_CALL_MEMORY_MB)"})
        return CallResult(int(answer["status"]), answer["body"])
    finally:
        receiver.close()
        child.join(2)  # an answered child is on its way out; a late one is killed
        if child.is_alive():
            child.kill()
            child.join()
        child.close()
