#!/bin/bash
# Runs 2 data-parallel ranks in two network namespaces joined by a veth pair
# shaped by tc, so that their all-reduces are real TCP traffic through a
# link of known rate.
#
# Usage (as root):
#   bench/ddp/netns.sh [--rate 10gbit] [--delay 0.1ms] ours  [ddpbench flags...]
#   bench/ddp/netns.sh [--rate 1gbit]  [--delay 0.1ms] torch [torch_ddp.py flags...]
#   bench/ddp/netns.sh [--rate ...] [--delay ...] check      # the link alone: round trip and TCP rate
#   bench/ddp/netns.sh --link tun --rate 1gbit --delay 0.5ms ours|torch|check ...
#
# Layout: namespaces rsdl0 and rsdl1 hold one rank each; the data link is
# the veth pair veth0 (10.77.0.1, in rsdl0) <-> veth1 (10.77.0.2, in
# rsdl1), whose both ends' egress is shaped. A third namespace, rsdlc,
# holds mpirun and a bridge (10.78.0.1) with a control veth into each rank's
# namespace (10.78.0.2, 10.78.0.3; unshaped): mpirun's PMIx server, which
# every rank must reach in MPI_Init, listens there. Nothing is added to the
# machine's own namespace, and the three namespaces (with the veths and
# their qdiscs) are deleted on exit, whatever the exit.
#
#   ours:  mpirun (Open MPI), in rsdlc, starts rank 0 as `ip netns exec rsdl0
#          ddpbench ...` and rank 1 in rsdl1 (MPMD), bound to a core each,
#          GOMAXPROCS=1. Two kinds of settings make it work:
#          - PMIx (the ranks' connection to mpirun in MPI_Init): by default
#            mpirun's PMIx server listens on 127.0.0.1 only, which inside a
#            rank's namespace is that namespace's own loopback, and MPI_Init
#            fails ("OPAL ERROR: Unreachable in file ext3x_client.c").
#            PMIX_MCA_ptl_tcp_remote_connections=1 and
#            PMIX_MCA_ptl_tcp_if_include=10.78.0.0/24 in mpirun's
#            environment make it listen on, and advertise to the ranks, the
#            bridge's address.
#          - MPI traffic: --mca pml ob1 --mca btl tcp,self
#            --mca btl_tcp_if_include 10.77.0.0/24: TCP over the shaped veth
#            only (the ranks share a machine, so without this Open MPI would
#            use shared memory, or UCX's, and the link would carry nothing).
#   torch: torch_ddp.py --threads 1, one rank per namespace, each on its own
#          core, Gloo on the veth (GLOO_SOCKET_IFNAME), rendezvous (TCPStore)
#          at rank 0's veth address.
#
# Shaping: netem (rate and one-way delay) where the kernel has sch_netem;
# otherwise tbf, which limits the rate and adds no delay — said on stderr
# and in the LINK line. (The development VM's kernel has neither sch_netem
# nor loadable modules, nor sch_fq for an eBPF delay.) --link tun replaces
# the veth pair by bench/ddp/linkemu, a user-space netem: a TUN device in
# each rank's namespace (tun0, tun1; MTU 65000, like veth's 64 KiB GSO
# segments) and a forwarder in this namespace that holds each direction's
# packets to the rate and the delay (FIFO, 2 s queue). It adds a delay on
# any kernel, at a cost: forwarding alone takes about 0.13 ms each way on
# the development VM (its round trip with --delay 0 is 0.26 ms; check
# measures it), the forwarder's CPU time is taken from the ranks' two cores
# (its LINKEMU line gives it), and it reaches about 4 Gbit/s at most there,
# so use it for 1 Gbit/s. tbf's bucket is 100 µs of traffic at the rate, at least 128 KiB
# (two 64 KiB GSO segments: with one, the rate reached fell to 0.6–0.8 of
# 1 Gbit/s when timers ran late on a loaded machine): small against the
# all-reduces (ResNet-20's 1 MiB, ResNet-50's 25 MiB buckets), so that the
# limit bites on nearly all of their bytes.
#
# After ours and torch it prints one line "LINK {json}": the shaping and
# the bytes each end of the data link sent during the run (ip -s link), so
# that a result shows that its traffic crossed the veth; and the bytes of
# the control link, which must stay small. (Its keys veth0_tx_bytes and
# veth1_tx_bytes hold the tun devices' counts with --link tun; with it
# linkemu's own LINKEMU line follows.)
#
# DDPBENCH names the ddpbench binary, built with MPI (default: built here
# with CGO_ENABLED=1 go build -tags mpi into a temporary folder).
set -euo pipefail

rate=10gbit
delay=0.1ms
link=veth
while [[ $# -gt 0 ]]; do
	case $1 in
	--rate) rate=$2; shift 2 ;;
	--delay) delay=$2; shift 2 ;;
	--link) link=$2; shift 2 ;;
	*) break ;;
	esac
done
what=${1:-}
[[ $# -gt 0 ]] && shift
case $what in ours | torch | check) ;; *)
	sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
	exit 2
	;;
esac
case $link in veth) dev0=veth0 dev1=veth1 ;; tun) dev0=tun0 dev1=tun1 ;; *)
	echo "netns.sh: --link $link: want veth or tun" >&2
	exit 2
	;;
esac
[[ $(id -u) -eq 0 ]] || { echo "netns.sh: network namespaces need root" >&2; exit 1; }

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
ns0=rsdl0 ns1=rsdl1 nsc=rsdlc
ip0=10.77.0.1 ip1=10.77.0.2
tmp=$(mktemp -d)

# delns ends what still runs in the namespaces (a rank whose peer failed)
# and deletes them.
delns() {
	local ns pids
	for ns in "$ns0" "$ns1" "$nsc"; do
		pids=$(ip netns pids "$ns" 2>/dev/null || true)
		[[ -n $pids ]] && kill $pids 2>/dev/null || true
		ip netns del "$ns" 2>/dev/null || true
	done
}
emu=
cleanup() {
	if [[ -n $emu ]]; then
		kill "$emu" 2>/dev/null && wait "$emu" || true # prints its LINKEMU line
		tail -n +2 "$tmp/linkemu.err" >&2 2>/dev/null || true # what it said after "ready"
	fi
	delns # takes the veths, the bridge and the qdiscs with them
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

delns # a previous run's, killed before its cleanup
for ns in "$ns0" "$ns1" "$nsc"; do
	ip netns add "$ns"
	ip -n "$ns" link set lo up
done
# The data link.
if [[ $link == veth ]]; then
	ip link add veth0 netns "$ns0" type veth peer name veth1 netns "$ns1"
else
	(cd "$root" && go build -o "$tmp/linkemu" ./bench/ddp/linkemu)
	"$tmp/linkemu" --a "$ns0:$dev0" --b "$ns1:$dev1" --rate "$rate" --delay "$delay" 2>"$tmp/linkemu.err" &
	emu=$!
	for _ in $(seq 100); do grep -q ready "$tmp/linkemu.err" && break; kill -0 "$emu" 2>/dev/null || break; sleep 0.05; done
	cat "$tmp/linkemu.err" >&2
	grep -q ready "$tmp/linkemu.err" || { echo "netns.sh: linkemu did not start" >&2; exit 1; }
	ip -n "$ns0" link set "$dev0" mtu 65000
	ip -n "$ns1" link set "$dev1" mtu 65000
fi
ip -n "$ns0" addr add "$ip0/24" dev "$dev0"
ip -n "$ns1" addr add "$ip1/24" dev "$dev1"
ip -n "$ns0" link set "$dev0" up
ip -n "$ns1" link set "$dev1" up
# The control network: a bridge in rsdlc, a veth "ctl" from each rank's namespace into it.
ip -n "$nsc" link add br0 type bridge
ip -n "$nsc" addr add 10.78.0.1/24 dev br0
ip -n "$nsc" link set br0 up
host=2
for ns in "$ns0" "$ns1"; do
	ip link add ctl netns "$ns" type veth peer name "c$ns" netns "$nsc"
	ip -n "$nsc" link set "c$ns" master br0
	ip -n "$nsc" link set "c$ns" up
	ip -n "$ns" addr add "10.78.0.$host/24" dev ctl
	ip -n "$ns" link set ctl up
	host=$((host + 1))
done

# Shaping, on each end's egress: netem's rate limits each direction and its
# delay is one way (a round trip takes 2·delay); its queue holds 2 s of
# traffic in 1500-byte packets, so that it drops nothing. (linkemu shapes
# the tun link itself.)
qdisc=netem shaped="netem rate $rate, $delay one-way delay" applied_delay=$delay pairs=("$ns0 veth0" "$ns1 veth1")
if [[ $link == tun ]]; then
	qdisc=linkemu shaped="linkemu (user space) rate $rate, $delay one-way delay" pairs=()
else
	bytes_per_s=$(python3 -c "import re,sys; m=re.fullmatch(r'([0-9.]+)([kmg]?)bit','${rate,,}') or sys.exit('netns.sh: --rate $rate: want e.g. 10gbit, 1gbit, 500mbit'); print(int(float(m[1])*{'':1,'k':1e3,'m':1e6,'g':1e9}[m[2]]/8))")
	limit=$((bytes_per_s * 2 / 1500 > 1000 ? bytes_per_s * 2 / 1500 : 1000))
fi
for pair in "${pairs[@]}"; do
	read -r ns dev <<<"$pair"
	if [[ $qdisc == netem ]] && tc -n "$ns" qdisc add dev "$dev" root netem rate "$rate" delay "$delay" limit "$limit" 2>/dev/null; then
		continue
	fi
	[[ $qdisc == netem && $dev == veth1 ]] && tc -n "$ns0" qdisc del dev veth0 root # both ends alike
	burst=$((bytes_per_s / 10000 > 131072 ? bytes_per_s / 10000 : 131072))
	for p in "$ns0 veth0" "$ns1 veth1"; do
		read -r n d <<<"$p"
		tc -n "$n" qdisc replace dev "$d" root tbf rate "$rate" burst "$burst" latency 50ms
	done
	qdisc=tbf applied_delay=0 shaped="tbf rate $rate (bucket $burst bytes), NO added delay: this kernel has no sch_netem"
	break
done
echo "netns.sh: $ns0 ($ip0) <-> $ns1 ($ip1) over $dev0/$dev1: $shaped" >&2

# txbytes NS DEV: the bytes DEV has sent.
txbytes() { ip -n "$1" -s -j link show dev "$2" | python3 -c "import json,sys; print(json.load(sys.stdin)[0]['stats64']['tx']['bytes'])"; }
declare -A before
snapshot() { for p in "$ns0 $dev0" "$ns1 $dev1" "$ns0 ctl" "$ns1 ctl"; do read -r n d <<<"$p"; before[$n/$d]=$(txbytes "$n" "$d"); done; }
link_line() {
	local d00 d11 c0 c1
	d00=$(($(txbytes "$ns0" "$dev0") - before[$ns0/$dev0]))
	d11=$(($(txbytes "$ns1" "$dev1") - before[$ns1/$dev1]))
	c0=$(($(txbytes "$ns0" ctl) - before[$ns0/ctl]))
	c1=$(($(txbytes "$ns1" ctl) - before[$ns1/ctl]))
	echo "LINK {\"what\":\"$what\",\"rate\":\"$rate\",\"qdisc\":\"$qdisc\",\"delay\":\"$applied_delay\",\"requested_delay\":\"$delay\",\"link\":\"$link\",\"veth0_tx_bytes\":$d00,\"veth1_tx_bytes\":$d11,\"control_tx_bytes\":$((c0 + c1))}"
	if ((d00 + d11 == 0)); then
		echo "netns.sh: nothing crossed the data link" >&2
		return 1
	fi
}

case $what in
check)
	# A TCP round trip (100 one-byte pings), then 100 MiB through the link,
	# with Python's sockets (neither ping nor iperf needed).
	ip netns exec "$ns1" python3 -c "
import socket
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1); s.bind(('$ip1',29600)); s.listen(1)
c,_=s.accept(); c.setsockopt(socket.IPPROTO_TCP,socket.TCP_NODELAY,1)
for _ in range(100): c.sendall(c.recv(1))
n=0
while True:
    b=c.recv(1<<20)
    if not b: break
    n+=len(b)
c.sendall(b'k')" &
	server=$!
	sleep 1
	ip netns exec "$ns0" python3 -c "
import json,socket,time
s=socket.create_connection(('$ip1',29600)); s.setsockopt(socket.IPPROTO_TCP,socket.TCP_NODELAY,1)
t=time.perf_counter()
for _ in range(100): s.sendall(b'p'); s.recv(1)
rtt=(time.perf_counter()-t)/100
buf=b'x'*(1<<20); t=time.perf_counter()
for _ in range(100): s.sendall(buf)
s.shutdown(socket.SHUT_WR); s.recv(1); dt=time.perf_counter()-t
print('RESULT '+json.dumps(dict(name='$link link $rate', link='$link', rate='$rate', qdisc='$qdisc', delay='$applied_delay', rtt_s=rtt, mib=100, transfer_s=dt, gbit_per_s=100*8*1.048576/dt/1000)))"
	wait "$server"
	;;
ours)
	bin=${DDPBENCH:-}
	if [[ -z $bin ]]; then
		bin=$tmp/ddpbench
		(cd "$root" && CGO_ENABLED=1 go build -tags mpi -o "$bin" ./bench/ddp/ddpbench)
	fi
	snapshot
	ip netns exec "$nsc" env PMIX_MCA_ptl_tcp_remote_connections=1 PMIX_MCA_ptl_tcp_if_include=10.78.0.0/24 \
		mpirun --allow-run-as-root --oversubscribe --bind-to core \
		--mca pml ob1 --mca btl tcp,self --mca btl_tcp_if_include 10.77.0.0/24 \
		-x GOMAXPROCS=1 \
		-np 1 ip netns exec "$ns0" "$bin" --distributed mpi "$@" : \
		-np 1 ip netns exec "$ns1" "$bin" --distributed mpi "$@"
	link_line
	;;
torch)
	common=(MASTER_ADDR=$ip0 MASTER_PORT=29517 WORLD_SIZE=2)
	snapshot
	ip netns exec "$ns1" env "${common[@]}" RANK=1 GLOO_SOCKET_IFNAME=$dev1 taskset -c 1 \
		/usr/bin/python3 "$here/torch_ddp.py" --threads 1 "$@" &
	pid1=$!
	ip netns exec "$ns0" env "${common[@]}" RANK=0 GLOO_SOCKET_IFNAME=$dev0 taskset -c 0 \
		/usr/bin/python3 "$here/torch_ddp.py" --threads 1 "$@"
	wait "$pid1"
	link_line
	;;
esac
