"""API: aggregates, flavors, images."""
from agent.controller import images
from agent.controller.api.views import aggregate_row, flavor_row, image_row


def aggregate_create(svc, name, zone=None, properties=None):
    svc.store.create_aggregate(name, availability_zone=zone)
    if properties:
        svc.store.set_aggregate_metadata(name, properties)
    return svc.store.get_aggregate(name)


def aggregate_set(svc, name, zone=None, properties=None):
    meta = dict(properties or {})
    if zone is not None:
        meta["availability_zone"] = zone
    svc.store.set_aggregate_metadata(name, meta)
    return svc.store.get_aggregate(name)


def aggregate_unset(svc, name, keys):
    svc.store.unset_aggregate_metadata(name, keys)
    return svc.store.get_aggregate(name)


def aggregate_add_host(svc, name, host):
    svc.store.add_aggregate_host(name, host)
    return svc.store.get_aggregate(name)


def aggregate_remove_host(svc, name, host):
    svc.store.remove_aggregate_host(name, host)
    return svc.store.get_aggregate(name)


def flavor_create(svc, name, vcpus, ram_mb, disk_gb, properties=None):
    return svc.store.create_flavor(name, vcpus, ram_mb, disk_gb,
                                   properties or {})


def flavor_set(svc, name, properties):
    svc.store.set_flavor_properties(name, properties)
    return svc.store.get_flavor(name)


def flavor_unset(svc, name, keys):
    svc.store.unset_flavor_properties(name, keys)
    return svc.store.get_flavor(name)


def image_create(svc, name, path, disk_format="qcow2"):
    return images.import_image(svc.store, name, path, disk_format)


METHODS = {
    "aggregate.create": aggregate_create,
    "aggregate.delete": lambda svc, name: svc.store.delete_aggregate(name),
    "aggregate.list": lambda svc: [aggregate_row(a) for a in
                                   svc.store.list_aggregates()],
    "aggregate.show": lambda svc, name: svc.store.get_aggregate(name),
    "aggregate.set": aggregate_set,
    "aggregate.unset": aggregate_unset,
    "aggregate.add_host": aggregate_add_host,
    "aggregate.remove_host": aggregate_remove_host,
    "flavor.create": flavor_create,
    "flavor.list": lambda svc: [flavor_row(f) for f in
                                svc.store.list_flavors()],
    "flavor.show": lambda svc, name: svc.store.get_flavor(name),
    "flavor.delete": lambda svc, name: svc.store.delete_flavor(name),
    "flavor.set": flavor_set,
    "flavor.unset": flavor_unset,
    "image.create": image_create,
    "image.list": lambda svc: [image_row(i) for i in
                               svc.store.list_images()],
    "image.show": lambda svc, name: svc.store.get_image(name),
    "image.delete": lambda svc, name: images.delete_image(svc.store, name),
}
