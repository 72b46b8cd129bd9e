"""User-facing errors: one family, caught once at the CLI boundary and printed as one line."""


class FactorNetError(Exception):
    """A mistake in the user's input or request; the message says what to do."""


class InputFileError(FactorNetError):
    """A bad input file; the message names the file (and line)."""

    def __init__(self, path, message, line=None):
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {message}")
        self.path = str(path)
        self.line = line


class StoreError(FactorNetError):
    """A store that is missing, incomplete, corrupt or built from other inputs."""


class ConfigError(FactorNetError):
    """A bad flag or option value; the message names the flag."""


class OutputError(ConfigError):
    """An -o / -oc path that may not be written or replaced; the message names it and what to
    do. Nothing was changed when it is raised."""
