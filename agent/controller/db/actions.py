"""Store methods: instance actions and their events (``server event
list``)."""
from sqlalchemy import insert, select, update

from agent.common.errors import NotFound

from agent.controller.db.models import (InstanceAction, InstanceActionEvent,
                                        utcnow)
from agent.controller.db.session import one

SUCCESS, ERROR = "Success", "Error"


def end_action(s, action_id, message=None):
    """In session ``s``: the action has finished (``message``: why it
    failed, if it did)."""
    act = one(s, select(InstanceAction).where(InstanceAction.id == action_id),
              f"action {action_id}")
    act.finish_time = utcnow()
    if message is not None:
        act.message = message
    return act


def begin_event(s, action_id, event):
    """In session ``s``: a new event of the action; its id."""
    return s.execute(insert(InstanceActionEvent).values(
        action_id=action_id, event=event, start_time=utcnow())
    ).inserted_primary_key[0]


def finish_event(s, event_id, result, details=None):
    """In session ``s``: the event has finished with ``result`` (one
    statement: the task engine does this at every step)."""
    done = s.execute(update(InstanceActionEvent)
                     .where(InstanceActionEvent.id == event_id)
                     .values(finish_time=utcnow(), result=result,
                             details=details))
    if not done.rowcount:
        raise NotFound(f"event {event_id} not found")


class ActionsMixin:
    def start_action(self, instance_uuid, action, request_id=None,
                     message=None):
        """Record that ``action`` (e.g. "migrate") started; returns it."""
        act = InstanceAction(instance_uuid=instance_uuid, action=action,
                             request_id=request_id, message=message)
        with self.db.write() as s:
            s.add(act)
            s.flush()
            return act.as_dict()

    def finish_action(self, action_id, message=None):
        with self.db.write() as s:
            return end_action(s, action_id, message).as_dict()

    def set_action_message(self, action_id, message):
        """Why the action runs (``server event list``'s Message)."""
        with self.db.write() as s:
            act = one(s, select(InstanceAction)
                      .where(InstanceAction.id == action_id),
                      f"action {action_id}")
            act.message = (message or "")[:255] or None
            return act.as_dict()

    def start_event(self, action_id, event):
        ev = InstanceActionEvent(action_id=action_id, event=event)
        with self.db.write() as s:
            s.add(ev)
            s.flush()
            return ev.as_dict()

    def finish_event(self, event_id, result=SUCCESS, details=None):
        """``result``: "Success" or "Error"; ``details``: e.g. the error."""
        with self.db.write() as s:
            finish_event(s, event_id, result, details)
            return one(s, select(InstanceActionEvent)
                       .where(InstanceActionEvent.id == event_id),
                       f"event {event_id}").as_dict()

    def list_actions(self, instance_uuid):
        """Oldest first, each with its ``events`` (oldest first)."""
        with self.db.read() as s:
            acts = list(s.scalars(select(InstanceAction)
                                  .where(InstanceAction.instance_uuid
                                         == instance_uuid)
                                  .order_by(InstanceAction.id)))
            events = {}
            for ev in s.scalars(select(InstanceActionEvent).where(
                    InstanceActionEvent.action_id.in_([a.id for a in acts]))
                    .order_by(InstanceActionEvent.id)):
                events.setdefault(ev.action_id, []).append(ev.as_dict())
            return [{**a.as_dict(), "events": events.get(a.id, [])}
                    for a in acts]
