#!/usr/bin/env bash
# Install Debian packages if their commands are missing, without letting the
# packages start their services (Debian's prometheus would bind :9090).
# Usage: scripts/install-deps.sh command[:package] ...
set -euo pipefail
missing=()
for spec in "$@"; do
  cmd=${spec%%:*}; pkg=${spec#*:}
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
created_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
  $sudo chmod +x /usr/sbin/policy-rc.d
  created_policy=1
fi
echo "installing: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
[ "$created_policy" -eq 1 ] && $sudo rm -f /usr/sbin/policy-rc.d
# Belt and braces: a service that started anyway is stopped.
for svc in prometheus prometheus-alertmanager prometheus-pushgateway haproxy nginx; do
  pkill -x "$svc" 2>/dev/null || true
done
exit 0
