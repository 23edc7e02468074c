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
"${ctl[@]}" drover host list
echo "Add an image with: vagrant ssh drover-h1 -c 'sudo drover image create NAME --file PATH'"
