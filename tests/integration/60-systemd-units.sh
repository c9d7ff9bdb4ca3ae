#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# manifests/systemd: both units pass `systemd-analyze verify` (with ExecStart pointed at the
# binaries of this build, since /usr/local/bin may not hold them here), run as the dedicated user,
# and keep the hardening the docs promise: no new privileges, a read-only system, CAP_NET_BIND_SERVICE
# for the dataplane only and no capability for the controller, and flags the binaries accept
# (each ExecStart's options are checked against the program's --help).
# Environment: AEGIS_CONTROLLER, AEGIS_DATAPLANE (default build/...), AEGIS_SOURCE_DIR.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
CONTROLLER=${AEGIS_CONTROLLER:-$SRC/build/aegis-controller}
DATAPLANE=${AEGIS_DATAPLANE:-$SRC/build/aegis-dataplane}
for b in "$CONTROLLER" "$DATAPLANE"; do
    [[ -x $b ]] || bail_out "$b is not built"
done
CONTROLLER=$(realpath "$CONTROLLER")
DATAPLANE=$(realpath "$DATAPLANE")
command -v systemd-analyze >/dev/null || bail_out "systemd-analyze is missing (hack/deps.sh)"

# unit_value UNIT KEY: the values of KEY= in UNIT, one per line
unit_value() {
    sed -n "s/^$2=//p" "$1"
}

# flags UNIT: the --options of ExecStart (continuation lines joined)
flags() {
    sed -e ':a' -e '/\\$/N; s/\\\n//; ta' "$1" | sed -n 's/^ExecStart=//p' | tr ' ' '\n' |
        grep '^--' | sort -u
}

for name in dataplane controller; do
    unit=$SRC/manifests/systemd/aegis-$name.service
    bin=$DATAPLANE
    [[ $name == controller ]] && bin=$CONTROLLER
    sed "s|/usr/local/bin/aegis-$name|$bin|" "$unit" >"$TMP/aegis-$name.service"
    if out=$(systemd-analyze verify --man=no "$TMP/aegis-$name.service" 2>&1) && [[ -z $out ]]; then
        ok "aegis-$name.service: systemd-analyze verify is clean"
    else
        notok "aegis-$name.service: systemd-analyze verify is clean" "$out"
    fi
    missing=()
    for f in $(flags "$unit"); do
        "$bin" --help | grep -q -- "$f" || missing+=("$f")
    done
    if ((${#missing[@]} == 0)); then
        ok "aegis-$name.service: every ExecStart flag is one the program knows"
    else
        notok "aegis-$name.service: every ExecStart flag is one the program knows" "${missing[*]}"
    fi
    if [[ $(unit_value "$unit" User) == aegis && $(unit_value "$unit" NoNewPrivileges) == yes &&
        $(unit_value "$unit" ProtectSystem) == strict && $(unit_value "$unit" UMask) == 0077 ]]; then
        ok "aegis-$name.service: dedicated user, no new privileges, read-only system, umask 0077"
    else
        notok "aegis-$name.service: dedicated user, no new privileges, read-only system, umask 0077"
    fi
done
dp=$SRC/manifests/systemd/aegis-dataplane.service
ctl=$SRC/manifests/systemd/aegis-controller.service
if [[ $(unit_value "$dp" CapabilityBoundingSet) == CAP_NET_BIND_SERVICE &&
    $(unit_value "$dp" AmbientCapabilities) == CAP_NET_BIND_SERVICE &&
    -z $(unit_value "$ctl" CapabilityBoundingSet) && -z $(unit_value "$ctl" AmbientCapabilities) ]]; then
    ok "capabilities: CAP_NET_BIND_SERVICE for the dataplane only, none for the controller"
else
    notok "capabilities: CAP_NET_BIND_SERVICE for the dataplane only, none for the controller"
fi
sock_dp=$(sed -n 's/.*--admin-socket \([^ ]*\).*/\1/p' "$dp")
sock_ctl=$(sed -n 's/.*--dataplane-socket \([^ ]*\).*/\1/p' "$ctl")
if [[ -n $sock_dp && $sock_dp == "$sock_ctl" ]]; then
    ok "the controller pushes to the socket the dataplane serves ($sock_dp)"
else
    notok "the controller pushes to the socket the dataplane serves" "$sock_dp vs $sock_ctl"
fi
finish
