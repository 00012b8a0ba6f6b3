"""The project's error type: a message meant for the user, naming what is wrong and where.

The CLI prints these as one line and exits with code 2; anything else is a bug and keeps its traceback.
"""


class LsbmError(Exception):
    """A problem with the user's input or environment that the message fully explains."""


class ScenarioError(LsbmError, ValueError):
    """A scenario file or override is invalid; the message names the field."""


class DataError(LsbmError, ValueError):
    """A data file (edge list, persona CSV, engagement data) is invalid; the message names the file and line or row."""
