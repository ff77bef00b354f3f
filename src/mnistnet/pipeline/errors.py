"""The failures this project expects, one class each, all with a message for people.

Each message names the file or params key and says how to fix it. A stage (``stage.run``)
turns exactly these into one ``error:`` line and a non-zero exit status, and each ``mnistnet``
subcommand does the same for the ones it expects; any other exception is a bug and keeps its
traceback. ``printable`` and ``one_line`` make text from outside (a file name, a teammate's
param) safe for a terminal, one line each. Nothing here subclasses
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


_SHORT_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(name: str) -> str:
    """A file name as one line of printable text that tells it apart from every other name,
    as ``ls -b`` shows names: a backslash, a newline, a tab or any other control or invisible
    character is escaped (``\\\\``, ``\\n``, ``\\x1b``, ``\\u2028``), and a byte that is not
    UTF-8 (Python holds it as a lone surrogate) shows as ``\\xff``. Most names are unchanged."""
    if name.isprintable() and "\\" not in name:
        return name
    return "".join(_escape(c) for c in name)


def one_line(message: str) -> str:
    """An error message as one line of printable text: escaped like ``printable``, except that
    a backslash stays as it is (messages quote bytes as Python writes them, ``b'\\x00'``)."""
    if message.isprintable():
        return message
    return "".join(c if c == "\\" else _escape(c) for c in message)


def _escape(c: str) -> str:
    if c in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[c]
    if c.isprintable():
        return c
    code = ord(c)
    if 0xDC80 <= code <= 0xDCFF:  # surrogateescape's stand-in for the byte code - 0xDC00
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x80:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
