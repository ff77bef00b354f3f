"""The failures this project expects, one class each, all with a message for people.

Each message names the file or params key and says how to fix it. A stage (``stage.run``)
turns exactly these into one ``error:`` line and a non-zero exit status, and each ``mnistnet``
subcommand does the same for the ones it expects; any other exception is a bug and keeps its
traceback. Nothing here subclasses
``ValueError`` or ``RuntimeError``, so catching these never swallows a NumPy shape bug.
"""


class Error(Exception):
    """A failure the project expects: bad params, bad data, no source, and the like."""


class ConfigError(Error):
    """A value in ``params.yaml`` is missing, unknown, mistyped or out of range.

    ``str(error)`` is one line per problem.
    """


class DataError(Error):
    """A data file is missing, malformed, or not what the reader expects."""


class NoSourceError(Error):
    """No download source yielded verified MNIST; the message lists each source's reason."""


class NumericsError(Error):
    """The pinned floating-point numerics were asked for but something else runs."""


class TrainingDiverged(Error):
    """The loss became NaN or infinite."""


class OutputError(Error):
    """An output file could not be written (disk full, no permission, read-only folder)."""
