"""The controller's state store: short transactions the controller and its
operations call.

    store = Store(CONF.database.connection)   # after upgrade(url)

Every method runs in its own transaction and returns plain JSON-ready
dicts (times as ISO-8601 UTC strings) or lists of them; names a user gives
are validated (InvalidInput), missing things raise NotFound, refused
changes Conflict.  The methods, by area:

- hosts (hosts.py): upsert_host, get_host, list_hosts, delete_host,
  enable_host, disable_host, mark_host_up, mark_host_down,
  set_host_down_reason; fencing: set_host_forced_down, mark_host_fenced,
  fence_failed, host_returned, set_fence_method
- host clean-ups (cleanups.py): record_cleanup, list_cleanups,
  delete_cleanup
- aggregates and zones (aggregates.py): create_aggregate,
  delete_aggregate, get_aggregate, list_aggregates,
  set_aggregate_metadata, unset_aggregate_metadata, add_aggregate_host,
  remove_aggregate_host, host_availability_zone
- flavors, images (catalog.py): create_flavor, get_flavor, list_flavors,
  delete_flavor, set_flavor_properties, unset_flavor_properties,
  create_image, get_image, list_images, delete_image
- instances (instances.py): create_instance, get_instance,
  list_instances, update_instance, start_operation, mark_instance_deleted
- placement (placement.py): claim, release, move_allocations,
  list_allocations, host_usage; host_states.py: host_states
- server groups (groups.py): create_group, get_group, list_groups,
  delete_group, add_group_member, instance_group, group_placement,
  group_memberships
- migrations (migration_records.py): create_migration, update_migration,
  get_migration, list_migrations
- actions (actions.py): start_action, finish_action,
  set_action_message, start_event,
  finish_event, list_actions
- metrics (metrics_reads.py): count_hosts, count_instances, tasks_after,
  migrations_after
- host events (host_events.py): add_host_event, list_host_events
- task log (tasks.py): task_create, task_get, tasks_unfinished,
  list_tasks, task_finish, task_progress, steps_get, step_begin,
  step_done, step_failed, step_undone
"""
from agent.controller.db.actions import ActionsMixin
from agent.controller.db.aggregates import AggregatesMixin
from agent.controller.db.catalog import CatalogMixin
from agent.controller.db.cleanups import CleanupsMixin
from agent.controller.db.groups import GroupsMixin
from agent.controller.db.host_events import HostEventsMixin
from agent.controller.db.host_states import HostStatesMixin
from agent.controller.db.hosts import HostsMixin
from agent.controller.db.instances import InstancesMixin
from agent.controller.db.metrics_reads import MetricsMixin
from agent.controller.db.migration_records import MigrationsMixin
from agent.controller.db.placement import ClaimFailed, PlacementMixin
from agent.controller.db.session import Database
from agent.controller.db.tasks import TasksMixin

__all__ = ["ClaimFailed", "Store"]


class Store(HostsMixin, AggregatesMixin, CatalogMixin, InstancesMixin,
            PlacementMixin, HostStatesMixin, MigrationsMixin, ActionsMixin,
            TasksMixin, CleanupsMixin, MetricsMixin, GroupsMixin,
            HostEventsMixin):
    def __init__(self, url):
        self.db = Database(url)

    def close(self):
        self.db.dispose()
