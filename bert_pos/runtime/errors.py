"""The errors a user can fix, which every command reports in one line without a traceback."""


class UserError(Exception):
    """A problem with the user's input, config or files; the message says what to change."""


class TrainingInterrupted(UserError):
    """SIGTERM or SIGINT stopped the run after a step; a resumable checkpoint is saved."""

    def __init__(self, message: str, signal_name: str):
        super().__init__(message)
        self.signal_name = signal_name


class NonFiniteError(UserError, RuntimeError):
    """A NaN or infinite loss or gradient; the last good state is saved."""
