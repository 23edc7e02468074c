"""The engine's task log: the store, plus instance actions and events.

Each step of a task that belongs to an instance action (``action_id`` in
its params) is also an event of that action, so ``server event list``
shows what ran, what failed and why, without operation modules writing
events themselves.
"""
import threading

from agent.controller.db.tasks import ENDED


class ActionTaskLog:
    def __init__(self, store):
        self.store = store
        self._events = {}
        self._actions = {}      # task id -> (action id, kind)
        self._lock = threading.Lock()

    def __getattr__(self, name):        # the rest of the task log
        return getattr(self.store, name)

    def _action(self, task_id):
        """The task's action and kind, read once per task (a task's params
        never change): a read of the store less for every step."""
        with self._lock:
            known = self._actions.get(task_id)
        if known is None:
            task = self.store.task_get(task_id)
            known = task["params"].get("action_id"), task["kind"]
            with self._lock:
                self._actions[task_id] = known
        return known

    def step_begin(self, task_id, index, name, cancellable=True,
                   done=None):
        """The store's step_begin, with the step's event begun (and the
        event of ``done``, (name, data), the step before, finished) in
        the same transaction."""
        action_id, kind = self._action(task_id)
        out = self.store.step_begin(task_id, index, name,
                                    cancellable=cancellable,
                                    action_id=action_id,
                                    event=f"{kind}_{name}", done=done,
                                    done_event=self._done_event(task_id,
                                                                done))
        if out["event_id"] is not None:
            with self._lock:
                self._events[(task_id, name)] = out["event_id"]
        return out

    def _event(self, task_id, name, result, details=None):
        """(event id, result, details) of the step's event, for the store
        to finish with the step; None if it has none."""
        with self._lock:
            event_id = self._events.pop((task_id, name), None)
        return None if event_id is None else (event_id, result, details)

    def _done_event(self, task_id, done):
        """The event of ``done`` ((name, data) of a step done), as the
        store finishes it."""
        return None if done is None else self._event(task_id, done[0],
                                                     "Success")

    def step_failed(self, task_id, name, error):
        self.store.step_failed(task_id, name, error,
                               event=self._event(task_id, name, "Error",
                                                 error))

    def step_skipped(self, task_id, name, data):
        self.store.step_skipped(
            task_id, name, data,
            event=self._event(task_id, name, "Skipped",
                              (data or {}).get("reason")))

    def record_leftover(self, task_id, host, leftover, reason):
        """What an undo could not remove from a gone host: an event now,
        and a clean-up for when the host returns."""
        action_id, kind = self._action(task_id)
        if action_id is not None:
            ev = self.store.start_event(action_id, f"{kind}_left_on_host")
            self.store.finish_event(ev["id"], "Skipped",
                                    f"left on {host} ({reason}): {leftover}")
        self.store.record_cleanup(host, leftover["uuid"],
                                  leftover["storage"], leftover["remove"],
                                  reason=reason)

    def task_finish(self, task_id, state, error=None, done=None):
        """The store's task_finish; a task that ends finishes its action
        (and ``done``, its last step, as in step_begin) in the same
        transaction."""
        event = self._done_event(task_id, done)
        if state not in ENDED:
            self.store.task_finish(task_id, state, error, done=done,
                                   done_event=event)
            return
        action_id, _ = self._action(task_id)
        with self._lock:
            self._actions.pop(task_id, None)
        self.store.task_finish(task_id, state, error, action_id=action_id,
                               done=done, done_event=event)
