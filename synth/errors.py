"""The one error hierarchy of the library and the service: every error they raise is a
SynthError, and each names where the bad input is (the option, the file and line, the field or
turn), so a user can fix it without guessing. The CLI prints them with its flag names and exits 1
(2 for a bad option); the server turns them into status codes. Every exception class of synth/
and server/ is declared here (a test checks it); the light client (client/synth_client, which
depends on grpcio and protobuf only) has its own, which are grpc.RpcErrors."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any


class SynthError(Exception):
    """Base class for errors a user can act on (bad input, bad configuration). Pickled whole (its
    class and every attribute, not by calling __init__ again), so that an error raised in a worker
    process reaches the parent as itself (synth.workflows.workers)."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuilt, (type(self), self.args, dict(self.__dict__)))


def _rebuilt(cls: type[SynthError], args: tuple[Any, ...], state: dict[str, Any]) -> SynthError:
    """A pickled SynthError made again: its arguments and attributes as they were."""
    exc = cls.__new__(cls)
    exc.args = args
    exc.__dict__.update(state)
    return exc


class _Unset:
    """No value given (ConfigError's default): one object, the same after pickling."""

    def __reduce__(self) -> str:
        return "_UNSET_VALUE"


_UNSET_VALUE = _Unset()


class ConfigError(SynthError, ValueError):
    """A setting that is out of range or unknown. `option` is the library's name for it (a config
    field such as 'on_error'); the command line shows its flag (--on-error) instead, and exits 2
    (a usage error)."""

    _UNSET = _UNSET_VALUE
    usage = True

    def __init__(
        self,
        option: str,
        message: str,
        value: object = _UNSET,
        mentions: Mapping[str, str] | None = None,
    ):
        """`mentions`: other options the message names, each written `{name}` in it, mapped to
        how a Python caller sets it (`{"resume_with_changes": "resume_with_changes=True"}`); the
        command line shows their flags instead."""
        self.option, self.message, self.value = option, message, value
        self.mentions = dict(mentions or {})
        super().__init__(self.render(option))

    def render(self, name: str, flag: Callable[[str], str] | None = None) -> str:
        """The message, naming the option `name` (a command-line flag, or the field itself) and
        the options it mentions as `flag` names them (the command line's flags), else as a
        Python caller writes them."""
        shown = name if self.value is self._UNSET else f"{name} {self.value!r}"
        message = self.message
        for key, python in self.mentions.items():
            message = message.replace("{" + key + "}", flag(key) if flag is not None else python)
        return f"{shown}: {message}"


class ConflictError(ConfigError):
    """A setting that is valid but conflicts with what is on disk (--no-resume on a dataset that
    has conversations, a resume with other options): the run refuses, exit 1."""

    usage = False


class NotAvailable(ConfigError):
    """What an option names is valid but cannot be had here (a model neither in the cache nor
    downloadable): the run fails, exit 1, saying what would get it."""

    usage = False


class DialogError(SynthError, ValueError):
    """A dialog that cannot be synthesized. `where` names the file and line or dataset index,
    `field` the offending field or turn, so messages read 'dialogs.jsonl line 7: turns[2].text: empty'."""

    def __init__(self, message: str, where: str = "", field: str = "", conversation_id: str = ""):
        self.message = message
        self.where = where
        self.field = field
        self.conversation_id = conversation_id
        super().__init__(str(self))

    def __str__(self) -> str:
        prefix = ": ".join(p for p in (self.where, self.field) if p)
        return f"{prefix}: {self.message}" if prefix else self.message

    def to_dict(self) -> dict[str, str]:
        return {
            "where": self.where,
            "field": self.field,
            "conversation_id": self.conversation_id,
            "error": self.message,
        }


class GateFailed(DialogError):
    """A turn that failed a quality gate in every take (synth.produce.gates): its dialog is
    rejected, and its failures.jsonl line has the gates and the best take's `scores`."""

    def __init__(
        self,
        message: str,
        where: str = "",
        field: str = "",
        conversation_id: str = "",
        scores: dict[str, Any] | None = None,
        gates: list[str] | None = None,
    ):
        self.scores = dict(scores or {})
        self.gates = list(gates or [])
        super().__init__(message, where, field, conversation_id)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "gates_failed": self.gates, "scores": self.scores}


class VoiceError(SynthError, KeyError):
    """An unknown voice, or a casting that cannot give every speaker a distinct voice."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class RecordError(SynthError, ValueError):
    """A record on disk that does not have the contract's fields; the message names the file."""


class DatasetError(SynthError):
    """A dataset file that is missing, unreadable, or names a path outside its folder."""


class InvalidConversationId(SynthError, ValueError):
    """A conversation id that cannot safely be a folder name."""


class AlreadyWritten(SynthError):
    """The conversation is already in the manifest (another worker or an earlier run wrote it)."""


class Claimed(SynthError):
    """Another live writer (another run on this folder) is making this conversation now."""


class Damaged(SynthError):
    """A conversation whose files are not what was written (its integrity record says so)."""


class WriteFailed(SynthError, OSError):
    """A conversation could not be committed (a full or read-only disk); nothing of it is listed."""


class Stopped(SynthError):
    """Synthesis was stopped between sentence chunks because the caller went away."""


class CannotSplit(DatasetError):
    """A turn that has no sentence end where a cut would make its pieces fit a model's window."""


class ExportBusy(SynthError):
    """Another export into the same output is running."""


class DatasetBusy(SynthError):
    """Another tool holds the dataset in a way this one cannot share (a rewrite such as `synth
    tokenize` holds it alone): the message names that process (pid, command)."""


class Abandoned(SynthError):
    """A conversation in progress left unfinished because the run was interrupted (Ctrl-C): its
    staging folder is removed, nothing of it is listed; the next run makes it."""


# -- fetching models ----------------------------------------------------------------------------
class FetchError(NotAvailable):
    """What could not be had for a model (synth.engines.kokoro_model.fetch_kokoro), and for each
    missing piece what would get it."""

    def __init__(self, missing: list[str], folder: Path):
        self.missing = missing
        super().__init__("kokoro", f"cannot assemble Kokoro into {folder}: " + "; ".join(missing))


class MissingPart(SynthError):
    """One piece of a model that could not be had; the message says what would get it."""


# -- the batch client (synth.remote.batch) ------------------------------------------------------
class NoServerReachable(SynthError):
    """Every server has been unreachable for the batch's `unreachable_timeout`."""


class DeadlinePassed(SynthError):
    """The dialog's deadline passed while every server was unreachable."""


# -- the service (server/synth_server) ----------------------------------------------------------
class RequestError(SynthError):
    """A request the server refuses: carries the gRPC status code to abort with (a
    grpc.StatusCode; this module does not import grpc) and the message naming the field."""

    def __init__(self, code: Any, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class Unreadable(SynthError):
    """A listed conversation that cannot be passed on as it was written (DATA_LOSS)."""
