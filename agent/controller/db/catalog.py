"""Store methods: flavors and images."""
import uuid as uuidlib

from sqlalchemy import func, or_, select

from agent.common.errors import Conflict
from agent.controller.db import validate
from agent.controller.db.models import Flavor, Image, Instance
from agent.controller.db.session import one

IMAGE_UPDATABLE = frozenset({"status", "size", "virtual_size", "checksum"})


def get_flavor(s, name_or_id):
    cond = Flavor.name == str(name_or_id)
    if str(name_or_id).isdigit():
        cond = or_(cond, Flavor.id == int(name_or_id))
    return one(s, select(Flavor).where(cond), f"flavor {name_or_id}")


def get_image(s, name_or_uuid):
    return one(s, select(Image).where(or_(Image.name == name_or_uuid,
                                          Image.uuid == name_or_uuid)),
               f"image {name_or_uuid}")


def _properties(props):
    return {validate.key(k, "property key"): validate.value(str(v),
                                                            f"value of {k}")
            for k, v in (props or {}).items()}


class CatalogMixin:
    def create_flavor(self, name, vcpus, ram_mb, disk_gb, properties=None):
        validate.name(name, "flavor name")
        flavor = Flavor(name=name, vcpus=validate.count(vcpus, "vcpus", 1),
                        ram_mb=validate.count(ram_mb, "ram_mb", 1),
                        disk_gb=validate.count(disk_gb, "disk_gb"),
                        properties=_properties(properties))
        with self.db.write() as s:
            if s.scalar(select(Flavor.id).where(Flavor.name == name)):
                raise Conflict(f"flavor {name} already exists")
            s.add(flavor)
            s.flush()
            return flavor.as_dict()

    def get_flavor(self, name_or_id):
        with self.db.read() as s:
            return get_flavor(s, name_or_id).as_dict()

    def list_flavors(self):
        with self.db.read() as s:
            return [f.as_dict() for f in
                    s.scalars(select(Flavor).order_by(Flavor.name))]

    def delete_flavor(self, name_or_id):
        """Instances keep their copy of the flavor."""
        with self.db.write() as s:
            s.delete(get_flavor(s, name_or_id))

    def set_flavor_properties(self, name_or_id, properties):
        with self.db.write() as s:
            flavor = get_flavor(s, name_or_id)
            flavor.properties = {**flavor.properties,
                                 **_properties(properties)}
            s.flush()
            return flavor.as_dict()

    def unset_flavor_properties(self, name_or_id, keys):
        with self.db.write() as s:
            flavor = get_flavor(s, name_or_id)
            flavor.properties = {k: v for k, v in flavor.properties.items()
                                 if k not in keys}
            s.flush()
            return flavor.as_dict()

    def create_image(self, name, path, format, virtual_size, size,
                     checksum=None, uuid=None, status="active",
                     instance_uuid=None):
        validate.name(name, "image name")
        image = Image(uuid=uuid or str(uuidlib.uuid4()), name=name,
                      path=path, format=format, virtual_size=virtual_size,
                      size=size, checksum=checksum, status=status,
                      instance_uuid=instance_uuid)
        with self.db.write() as s:
            if s.scalar(select(Image.id).where(Image.name == name)):
                raise Conflict(f"image {name} already exists")
            s.add(image)
            s.flush()
            return image.as_dict()

    def get_image(self, name_or_uuid):
        with self.db.read() as s:
            return get_image(s, name_or_uuid).as_dict()

    def update_image(self, name_or_uuid, **values):
        """Set ``values`` (status, size, virtual_size, checksum) of an
        image; returns it."""
        unknown = set(values) - IMAGE_UPDATABLE
        if unknown:
            raise ValueError(f"cannot update {sorted(unknown)}")
        with self.db.write() as s:
            image = get_image(s, name_or_uuid)
            for key, value in values.items():
                setattr(image, key, value)
            s.flush()
            return image.as_dict()

    def list_images(self):
        with self.db.read() as s:
            return [i.as_dict() for i in
                    s.scalars(select(Image).order_by(Image.name))]

    def delete_image(self, name_or_uuid):
        """Delete an image no live instance was built from; returns it."""
        with self.db.write() as s:
            image = get_image(s, name_or_uuid)
            users = s.scalar(select(func.count()).select_from(Instance)
                             .where(Instance.image_uuid == image.uuid,
                                    Instance.deleted_at.is_(None)))
            if users:
                raise Conflict(f"image {image.name} is used by {users} "
                               "instances")
            shelved = s.scalar(select(func.count()).select_from(Instance)
                               .where(Instance.shelved_image_uuid
                                      == image.uuid,
                                      Instance.deleted_at.is_(None)))
            if shelved:
                raise Conflict(f"image {image.name} holds the disk of a "
                               "shelved instance")
            s.delete(image)
            return image.as_dict()
