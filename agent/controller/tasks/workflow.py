"""What an operation is: an ordered list of steps, each with its undo.

An operation module builds a ``Workflow``; the engine runs it, recording each
step before it runs, so that a restarted controller can finish it
(``resume="forward"``: steps are idempotent, the one in flight runs again) or
undo it (``resume="undo"``).
"""
from dataclasses import dataclass, field
from collections.abc import Callable
from typing import Any


@dataclass(frozen=True)
class Step:
    """``commit``: once this step is done the task only goes forward (see
    agent.controller.tasks.engine)."""
    name: str
    do: Callable[["Context"], dict | None]
    undo: Callable[["Context"], None] | None = None
    commit: bool = False


@dataclass
class Workflow:
    kind: str
    steps: list[Step]
    resume: str = "forward"             # or "undo"
    # Called after every undo ran, with the error that stopped the task.
    on_failed: Callable[["Context", Exception], None] | None = None

    def __post_init__(self):
        if self.resume not in ("forward", "undo"):
            raise ValueError(f"resume must be forward or undo: {self.resume}")
        names = [s.name for s in self.steps]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate step names in {self.kind}")
        for i, step in enumerate(self.steps):
            if step.commit and any(s.undo for s in self.steps[i + 1:]):
                # After the point of no return nothing is ever undone.
                raise ValueError(f"{self.kind}: step {step.name} is a commit "
                                 "point, so no later step may have an undo")


@dataclass
class Context:
    """What steps see: the task's parameters, what earlier steps returned,
    and the controller's services (store, agents, scheduler)."""
    task_id: int
    params: dict
    services: Any
    data: dict = field(default_factory=dict)
    progress: Callable[[str], None] = lambda message: None
    # Set when the task failed past its commit point (nothing undone).
    committed: bool = False

    def __getitem__(self, key):
        if key in self.data:
            return self.data[key]
        return self.params[key]

    def get(self, key, default=None):
        try:
            return self[key]
        except KeyError:
            return default
