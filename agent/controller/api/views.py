"""Store records as operators see them (column names of the CLI)."""
from agent.controller import fencing, states


def host_row(h, zone, instances):
    return {"Name": h["name"], "Address": h["address"], "State": h["state"],
            "Status": "enabled" if h["enabled"] else "disabled",
            "Zone": zone, "vCPUs": h["vcpus"],
            "vCPUs Used": h.get("vcpus_allocated", h["vcpus_used"]),
            "RAM MB": h["memory_mb"],
            "RAM MB Used": h.get("memory_mb_allocated", h["memory_mb_used"]),
            "Instances": instances, "Last Seen": h["last_seen"],
            "Fence Agent": h.get("fence_agent"),
            "Reason": fencing.shown_reason(h),
            "Down Reason": h["down_reason"]}


def aggregate_row(a):
    return {"Name": a["name"], "Availability Zone": a["availability_zone"],
            "Hosts": a["hosts"],
            "Properties": {k: v for k, v in a["metadata"].items()
                           if k != "availability_zone"}}


def flavor_row(f):
    return {"Name": f["name"], "vCPUs": f["vcpus"], "RAM": f["ram_mb"],
            "Disk": f["disk_gb"], "Properties": f["properties"]}


def image_row(i):
    return {"ID": i["uuid"], "Name": i["name"], "Format": i["format"],
            "Status": i.get("status", "active"), "Size": i["size"],
            "Virtual Size": i["virtual_size"]}


def server_row(inst):
    return {"ID": inst["uuid"], "Name": inst["name"],
            "Status": inst["status"], "Host": inst["host"],
            "Host Status": inst["host_status"],
            "Networks": f"lab={inst['ip']}" if inst["ip"] else "",
            "Flavor": inst["flavor"]["name"],
            "Image": inst.get("image_name") or inst["image_uuid"]}


def server_detail(inst):
    return {"id": inst["uuid"], "name": inst["name"],
            "status": inst["status"], "vm_state": inst["vm_state"],
            "task_state": inst["task_state"],
            "power_state": states.shown_power_state(inst["power_state"],
                                                    inst["host_status"]),
            "host": inst["host"], "host_status": inst["host_status"],
            "availability_zone": inst["availability_zone"],
            "flavor": inst["flavor"]["name"],
            "vcpus": inst["flavor"]["vcpus"],
            "ram_mb": inst["flavor"]["ram_mb"],
            "disk_gb": inst["flavor"]["disk_gb"],
            "image": inst.get("image_name") or inst["image_uuid"],
            "addresses": inst["ip"], "mac": inst["mac"],
            "storage": inst["storage"],
            "metadata": inst.get("guest_metadata") or {},
            "fault": inst["error"], "created": inst["created_at"],
            "launched": inst["launched_at"], "updated": inst["updated_at"]}


def rescue_note(inst, image, rescued_at, timeout):
    """How to reach a rescued instance's rescue system (server show)."""
    note = (f"rescue system booted from image {image} on {inst['host']}; "
            f"reach it at {inst['ip']} (the instance's own address and MAC "
            f"{inst['mac']}) or its serial console (server console log); "
            "the instance's own disk is attached after the rescue disk "
            "(vdb), not booted; 'server unrescue' boots it again")
    if timeout and rescued_at:
        note += f"; unrescued automatically {timeout} s after {rescued_at}"
    return note


def event_rows(actions):
    rows = []
    for a in actions:
        failed = [e for e in a.get("events", [])
                  if e.get("result") not in (None, "Success")]
        rows.append({"Request ID": a["request_id"], "Action": a["action"],
                     "Start Time": a["start_time"],
                     "Finish Time": a["finish_time"],
                     "Result": ("Error" if failed else
                                "Success" if a["finish_time"] else
                                "In progress"),
                     "Message": a["message"]})
    return rows
