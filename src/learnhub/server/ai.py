"""The AI.* commands (RedisAI 1.2.7): each hands its arguments to ``hub.ai`` and turns the
reply into RESP values."""

from __future__ import annotations

from typing import Any

from learnhub.ai.engine import Status
from learnhub.errors import AIError, WrongType
from learnhub.server.commands import CommandError, Context, command
from learnhub.server.resp import ErrorReply, SimpleString

NAMES = [
    "TENSORSET", "TENSORGET",
    "MODELSTORE", "MODELSET", "MODELGET", "MODELDEL", "_MODELSCAN", "MODELEXECUTE", "MODELRUN",
    "SCRIPTSTORE", "SCRIPTSET", "SCRIPTGET", "SCRIPTDEL", "_SCRIPTSCAN", "SCRIPTEXECUTE",
    "SCRIPTRUN",
    "DAGEXECUTE", "DAGEXECUTE_RO", "DAGRUN", "DAGRUN_RO", "DAGEXECUTEASYNC", "DAGRUNASYNC",
    "DAGSTATUS", "DAGRESULT", "DAGCANCEL",
    "INFO", "CONFIG",
]  # fmt: skip


def _error(exc: AIError) -> str:
    return f"WRONGTYPE {exc}" if isinstance(exc, WrongType) else f"ERR {exc}"


def _resp(value: Any) -> Any:
    if isinstance(value, Status):
        return SimpleString(value)
    if isinstance(value, AIError):  # one op's failure inside a DAG's reply
        return ErrorReply(_error(value))
    if isinstance(value, list):
        return [_resp(v) for v in value]
    return value


def _register(name: str) -> None:
    full = f"AI.{name}"
    argv0 = full.encode()

    def handler(ctx: Context, args: list[bytes]) -> Any:
        try:
            return _resp(ctx.hub.ai.command([argv0, *args]))
        except AIError as exc:
            raise CommandError(_error(exc)) from None

    scans = name.startswith("_")
    command(full, -1 if scans else -2, blocking=True)(handler)


for _name in NAMES:
    _register(_name)
