# tests/harness/hosts.sh - sourced by tests/run.sh (tests/cases/migrate.sh)
# and by bench/migrate.sh: two "hosts" on one machine for a migration
# (issue 14).  Each is a network namespace that lives as long as a process
# in it (unshare -n sleep), which the caller ends; the two are joined by a
# veth pair, va at 10.77.0.1/24 in A and vb at 10.77.0.2/24 in B.  Needs
# root and ip (iproute2).

HOST_ADDR_A=10.77.0.1
HOST_ADDR_B=10.77.0.2

# ns_differs PID NET: process PID is in another network namespace than NET
ns_differs() {
	local n
	n=$(readlink "/proc/$1/ns/net" 2>/dev/null) && [ "$n" != "$2" ]
}

# netns_start [UNSHARE-OPTION...]: a process in a network namespace of its
# own (and whatever else the options ask), in the background; its pid in
# NSPID.  The namespace is there once netns_made.
netns_start() {
	unshare -n "$@" sleep 100000 &
	NSPID=$!
}

# netns_made PID: PID has left our network namespace (unshare made its own)
netns_made() {
	ns_differs "$1" "$(readlink /proc/self/ns/net)"
}

# hosts_join PA PB: the network namespaces of processes PA (host A) and PB
# (host B) joined by the veth pair, every link up (lo too)
hosts_join() {
	ip link add va netns "$1" type veth peer name vb netns "$2" &&
		nsenter -t "$1" -n ip addr add "$HOST_ADDR_A/24" dev va &&
		nsenter -t "$2" -n ip addr add "$HOST_ADDR_B/24" dev vb &&
		nsenter -t "$1" -n ip link set va up && nsenter -t "$2" -n ip link set vb up &&
		nsenter -t "$1" -n ip link set lo up && nsenter -t "$2" -n ip link set lo up
}
