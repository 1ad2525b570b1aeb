"""The errors a learner can meet, each saying what to do next."""

__all__ = ["StageError", "NonFiniteError", "LoopBusyError", "CheckpointError", "ReplayError"]


class StageError(RuntimeError):
    """A stage was called out of order; the message names the stage that is due."""


class NonFiniteError(ArithmeticError):
    """A loss or gradient became NaN or infinite; the message says where."""

    def __init__(self, message: str, stage: str, where: str) -> None:
        super().__init__(message)
        self.stage = stage  # "loss" or "backward"
        self.where = where  # "loss" or the parameter's name


class LoopBusyError(RuntimeError):
    """Another thread (the dashboard's player) owns the loop right now."""


class CheckpointError(ValueError):
    """A checkpoint file cannot be used; the loop was left as it was."""


class ReplayError(RuntimeError):
    """A rewind could not replay the steps exactly; the loop was left as it was."""
