"""API: server groups (``drover server group ...``)."""


def _view(group):
    return {"id": group["uuid"], "name": group["name"],
            "policy": group["policy"], "rules": group["rules"],
            "members": group["members"]}


def group_create(svc, name, policy, rules=None):
    return _view(svc.store.create_group(name, policy, rules))


def group_list(svc):
    return [{"ID": g["uuid"], "Name": g["name"], "Policy": g["policy"],
             "Rules": g["rules"], "Members": len(g["members"])}
            for g in svc.store.list_groups()]


def group_show(svc, name):
    return _view(svc.store.get_group(name))


def group_delete(svc, name):
    svc.store.delete_group(name)


METHODS = {
    "server_group.create": group_create,
    "server_group.list": group_list,
    "server_group.show": group_show,
    "server_group.delete": group_delete,
}
