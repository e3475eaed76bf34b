#!/usr/bin/env bash
# The offline cluster's pod network, what kindnet would do, made offline by the harness:
# once every node has registered and got its spec.podCIDRs (an IPv4 and an IPv6 range),
#   - each node gets a bridge CNI config whose host-local ranges are its own podCIDRs,
#     both families (containerd picks the file up; the node turns Ready);
#   - each node routes every other node's podCIDRs via that node's address on kind's
#     docker network, in the family of the range (pod to pod across nodes, no NAT).
# The host never routes pod traffic between nodes: it stays on kind's bridge, and the
# egress guard (hack/cluster/egress-guard.sh) blackholes the pod ranges on the host.
#
#   hack/cluster/pod-network.sh NODE_COUNT    needs docker and kubectl (KUBECONFIG set)
set -euo pipefail
want=${1:?usage: pod-network.sh NODE_COUNT}
CONFLIST=/etc/cni/net.d/10-podnat-bridge.conflist

# One line a node: NAME POD_CIDRS,... INTERNAL_IPS,...
nodes() {
    kubectl get nodes -o jsonpath='{range .items[*]}{.metadata.name}{" "}{range .spec.podCIDRs[*]}{@}{","}{end}{" "}{range .status.addresses[?(@.type=="InternalIP")]}{.address}{","}{end}{"\n"}{end}'
}

# Every node there, each with two pod ranges and two addresses (one per family).
complete() {
    local listing=$1 name cidrs ips count=0
    while read -r name cidrs ips; do
        [[ -n $name ]] || continue
        count=$((count + 1))
        [[ $cidrs == *.*,*:*, || $cidrs == *:*,*.*, ]] || return 1
        [[ $ips == *.*,*:*, || $ips == *:*,*.*, ]] || return 1
    done <<<"$listing"
    ((count == want))
}

listing=
for _ in $(seq 1 120); do
    listing=$(nodes 2>/dev/null || true)
    complete "$listing" && break
    listing=
    sleep 0.5
done
[[ -n $listing ]] || { echo "hack/cluster/pod-network.sh: $want nodes with podCIDRs (both families) not seen in 60s:" >&2; nodes >&2; exit 1; }

# The address of ADDRS in CIDR's family: the next hop to another node's pod range.
same_family() {  # same_family CIDR ADDR,ADDR,
    local cidr=$1 addr
    IFS=, read -ra addrs <<<"$2"
    for addr in "${addrs[@]}"; do
        if [[ $cidr == *:* && $addr == *:* ]] || [[ $cidr != *:* && -n $addr && $addr != *:* ]]; then
            echo "$addr"
            return
        fi
    done
}

conflist() {  # conflist CIDR,CIDR,
    local ranges="" routes="" cidr
    IFS=, read -ra cidrs <<<"$1"
    for cidr in "${cidrs[@]}"; do
        [[ -n $cidr ]] || continue
        ranges+="${ranges:+, }[{\"subnet\": \"$cidr\"}]"
        if [[ $cidr == *:* ]]; then dst="::/0"; else dst="0.0.0.0/0"; fi
        routes+="${routes:+, }{\"dst\": \"$dst\"}"
    done
    cat <<EOF
{
  "cniVersion": "1.0.0",
  "name": "podnat-bridge",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {"type": "host-local", "ranges": [$ranges], "routes": [$routes]}
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
}

while read -r -u 3 name cidrs _; do
    conflist "$cidrs" | docker exec -i "$name" sh -c "cat >$CONFLIST.tmp && mv $CONFLIST.tmp $CONFLIST"
    while read -r -u 4 other other_cidrs other_ips; do
        [[ $other == "$name" ]] && continue
        IFS=, read -ra ranges <<<"$other_cidrs"
        for cidr in "${ranges[@]}"; do
            [[ -n $cidr ]] || continue
            via=$(same_family "$cidr" "$other_ips")
            docker exec "$name" ip route replace "$cidr" via "$via"
        done
    done 4<<<"$listing"
done 3<<<"$listing"
