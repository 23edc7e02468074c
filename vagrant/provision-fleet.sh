#!/usr/bin/env bash
# Runs on the last host once every host is up: registers each host with the
# controller on drover-h1, over SSH with the fleet key and pinned host keys.
set -euo pipefail
: "${DROVER_HOSTS:?}" "${DROVER_NETWORK:?}"
ctl=(ssh -o BatchMode=yes -o StrictHostKeyChecking=yes "root@${DROVER_NETWORK}.11")
for i in $(seq 1 "$DROVER_HOSTS"); do
  if ! "${ctl[@]}" drover host show "drover-h$i" >/dev/null 2>&1; then
    "${ctl[@]}" drover host add "drover-h$i" --address "${DROVER_NETWORK}.$((10 + i))"
  fi
done
# Fencing: fence_virsh powers a host off through the outer libvirt (the
# machine running vagrant). Needs drover with `host set --fence-agent`.
if "${ctl[@]}" drover host set --help 2>/dev/null | grep -q -- --fence-agent; then
  sudo_opt=()
  [ "${DROVER_FENCE_SUDO:-0}" = 1 ] && sudo_opt=(--fence-option use_sudo=1)
  for i in $(seq 1 "$DROVER_HOSTS"); do
    "${ctl[@]}" drover host set "drover-h$i" --fence-agent fence_virsh \
      --fence-option "ipaddr=${DROVER_FENCE_ADDRESS:?}" \
      --fence-option "login=${DROVER_FENCE_LOGIN:?}" \
      --fence-option identity_file=/etc/drover/ssh/fence_virsh \
      --fence-option "plug=${DROVER_DOMAIN_PREFIX:?}drover-h$i" \
      "${sudo_opt[@]}"
  done
else
  echo "this drover has no 'host set --fence-agent': hosts left without fencing"
fi
"${ctl[@]}" drover host list
echo "Add an image with: vagrant ssh drover-h1 -c 'sudo drover image create NAME --file PATH'"
