#!/usr/bin/env bash
# The offline cluster's egress guard: no packet from a node or a pod may leave the machine.
#
#   hack/cluster/egress-guard.sh on KIND_CONFIG   drop forwarded packets out of every uplink, both
#                                          families; blackhole the config's pod and service CIDRs
#   hack/cluster/egress-guard.sh add-uplink DEV   also treat DEV as an uplink (tests add a stand-in;
#                                          the real uplinks always stay in the set)
#   hack/cluster/egress-guard.sh show             the guard's rules and routes, both families
#   hack/cluster/egress-guard.sh off              remove all of it
#
# Uplinks are the devices of the default routes of IPv4 *and* IPv6. One nft table of the
# guard's own (family inet, forward hook) drops whatever is routed out of them, whatever the
# family: dockerd 20.10 adds no ip6tables rules, and a drop in any base chain is final, so
# Docker's own ACCEPTs in FORWARD cannot undo it. Nodes and pods only ever reach the outside
# through the host's forward path, so this holds for dual-stack pods and for any number of
# nodes. The blackholes keep pod and service addresses the host has no route for (a pod's
# packet to a stale pod IP) from following the default route at all.
# Only hack/cluster/e2e-cluster.sh (the offline harness) uses it; hack/cluster/e2e-kind.sh leaves the user's
# network alone.
set -euo pipefail
TABLE=podnat_egress_guard
state=${PODNAT_GUARD_STATE:-/run/podnat-e2e}

uplinks() {
    { ip -4 -o route show default; ip -6 -o route show default; } 2>/dev/null |
        grep -o 'dev [^ ]*' | awk '{print $2}' | sort -u
}

# The podSubnet and serviceSubnet of a kind config, each possibly a comma-separated dual pair.
cluster_cidrs() {
    sed -n 's/^ *\(podSubnet\|serviceSubnet\): *"\{0,1\}\([^"]*\)"\{0,1\} *$/\2/p' "$1" | tr ',' '\n' |
        sed 's/ //g' | grep -v '^$'
}

blackhole() {  # blackhole add|del CIDR
    local family=-4
    [[ $2 == *:* ]] && family=-6
    if [[ $1 == add ]]; then
        ip "$family" route replace blackhole "$2"
    else
        ip "$family" route del blackhole "$2" 2>/dev/null || true
    fi
}

case ${1:-} in
on)
    config=${2:?usage: egress-guard.sh on KIND_CONFIG}
    mkdir -p "$state"
    elements=$(uplinks | sed 's/.*/"&"/' | paste -sd, -)
    [[ -n $elements ]] && elements="elements = { $elements }"
    nft -f - <<EOF
table inet $TABLE
delete table inet $TABLE
table inet $TABLE {
    set uplinks {
        type ifname
        $elements
    }
    chain forward {
        type filter hook forward priority filter - 10; policy accept;
        oifname @uplinks counter drop
    }
}
EOF
    cluster_cidrs "$config" >"$state/blackholes"
    while read -r cidr; do blackhole add "$cidr"; done <"$state/blackholes"
    ;;
add-uplink)
    nft add element inet "$TABLE" uplinks "{ \"${2:?usage: egress-guard.sh add-uplink DEV}\" }"
    ;;
show)
    nft list table inet "$TABLE"
    echo "# blackholed (IPv4, IPv6):"
    ip -4 route show type blackhole
    ip -6 route show type blackhole
    ;;
off)
    nft delete table inet "$TABLE" 2>/dev/null || true
    if [[ -f $state/blackholes ]]; then
        while read -r cidr; do blackhole del "$cidr"; done <"$state/blackholes"
        rm -f "$state/blackholes"
    fi
    ;;
*)
    sed -n '2,18p' "$0" >&2
    exit 2
    ;;
esac
