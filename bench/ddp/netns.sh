#!/bin/bash
# Runs 2 data-parallel ranks in two network namespaces joined by a veth pair
# whose both ends are rate-limited and delayed by tc (netem), so that their
# all-reduces are real TCP traffic through a link of known speed.
#
# Usage (as root):
#   bench/ddp/netns.sh [--rate 10gbit] [--delay 0.1ms] ours  [ddpbench flags...]
#   bench/ddp/netns.sh [--rate 1gbit]  [--delay 0.1ms] torch [torch_ddp.py flags...]
#   bench/ddp/netns.sh [--rate ...] [--delay ...] check      # the link alone: ping and a TCP transfer
#
#   ours:  mpirun (Open MPI) starts rank 0 in namespace rsdl0 and rank 1 in
#          rsdl1 (MPMD: each rank is `ip netns exec NS ddpbench ...`), one
#          core and GOMAXPROCS=1 each, and is told to use TCP over the veth
#          addresses only: --mca pml ob1 --mca btl tcp,self
#          --mca btl_tcp_if_include 10.77.0.0/24 (without it the two ranks,
#          on one machine, would talk through shared memory).
#          NOT WORKING YET with Debian's Open MPI 4.1.4: the ranks fail in
#          MPI_Init ("OPAL ERROR: Unreachable in file ext3x_client.c"),
#          because PMIx connects them to mpirun over TCP on 127.0.0.1, which
#          inside a namespace is the namespace's own loopback. The fix to
#          try: a veth from the root namespace into each one, and PMIx told
#          to accept and advertise that address (PMIX_MCA_ptl_tcp_if_include,
#          PMIX_MCA_ptl_tcp_remote_connections=1).
#   torch: torch_ddp.py --threads 1, one rank per namespace, Gloo on the
#          veth (GLOO_SOCKET_IFNAME), rendezvous at rank 0's address.
#
# DDPBENCH names the ddpbench binary, built with MPI (default: built here
# with CGO_ENABLED=1 go build -tags mpi into a temporary folder). The
# namespaces, and with them the veth pair and its qdiscs, are deleted on
# exit, whatever the exit. Nothing leaves the two namespaces.
set -euo pipefail

rate=10gbit
delay=0.1ms
while [[ $# -gt 0 ]]; do
	case $1 in
	--rate) rate=$2; shift 2 ;;
	--delay) delay=$2; shift 2 ;;
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
[[ $(id -u) -eq 0 ]] || { echo "netns.sh: network namespaces need root" >&2; exit 1; }

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
ns0=rsdl0 ns1=rsdl1
ip0=10.77.0.1 ip1=10.77.0.2
tmp=$(mktemp -d)

cleanup() {
	ip netns del "$ns0" 2>/dev/null || true # takes the veth pair and its qdiscs with it
	ip netns del "$ns1" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cleanup_stale() { ip netns del "$ns0" 2>/dev/null || true; ip netns del "$ns1" 2>/dev/null || true; }
cleanup_stale
ip netns add "$ns0"
ip netns add "$ns1"
ip link add veth0 netns "$ns0" type veth peer name veth1 netns "$ns1"
ip -n "$ns0" addr add "$ip0/24" dev veth0
ip -n "$ns1" addr add "$ip1/24" dev veth1
for ns in "$ns0" "$ns1"; do ip -n "$ns" link set lo up; done
ip -n "$ns0" link set veth0 up
ip -n "$ns1" link set veth1 up
# netem on each end's egress: the rate limits each direction, the delay is
# one way (a round trip takes 2·delay); its queue holds 2 s of traffic at
# the rate in 1500-byte packets, so that it drops nothing. A kernel without
# sch_netem (some VMs' kernels) gets tbf for the rate and no delay, said so.
bytes_per_s=$(python3 -c "import re; m=re.fullmatch(r'([0-9.]+)([kmg]?)bit','${rate,,}'); print(int(float(m[1])*{'':1,'k':1e3,'m':1e6,'g':1e9}[m[2]]/8))")
limit=$((bytes_per_s * 2 / 1500 > 1000 ? bytes_per_s * 2 / 1500 : 1000))
shaped="netem rate $rate, $delay one-way delay"
for pair in "$ns0 veth0" "$ns1 veth1"; do
	read -r ns dev <<<"$pair"
	if ! tc -n "$ns" qdisc add dev "$dev" root netem rate "$rate" delay "$delay" limit "$limit" 2>/dev/null; then
		# tbf: a bucket of 4 ms of traffic (at least 64 KiB: a GSO segment), 50 ms of queue.
		burst=$((bytes_per_s / 250 > 65536 ? bytes_per_s / 250 : 65536))
		tc -n "$ns" qdisc add dev "$dev" root tbf rate "$rate" burst "$burst" latency 50ms
		shaped="tbf rate $rate, NO added delay (this kernel has no sch_netem)"
	fi
done
echo "netns.sh: $ns0 ($ip0) <-> $ns1 ($ip1): $shaped" >&2

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
c.sendall(b'k'); print('received',n,'bytes')" &
	sleep 1
	ip netns exec "$ns0" python3 -c "
import socket,time
s=socket.create_connection(('$ip1',29600)); s.setsockopt(socket.IPPROTO_TCP,socket.TCP_NODELAY,1)
t=time.perf_counter()
for _ in range(100): s.sendall(b'p'); s.recv(1)
print(f'round trip {(time.perf_counter()-t)/100*1e3:.3f} ms')
buf=b'x'*(1<<20); t=time.perf_counter()
for _ in range(100): s.sendall(buf)
s.shutdown(socket.SHUT_WR); s.recv(1); dt=time.perf_counter()-t
print(f'sent 100 MiB in {dt:.3f} s: {100*8*1.048576/dt/1000:.2f} Gbit/s')"
	wait
	;;
ours)
	bin=${DDPBENCH:-}
	if [[ -z $bin ]]; then
		bin=$tmp/ddpbench
		(cd "$root" && CGO_ENABLED=1 go build -tags mpi -o "$bin" ./bench/ddp/ddpbench)
	fi
	mpirun --allow-run-as-root --oversubscribe --bind-to core \
		--mca pml ob1 --mca btl tcp,self --mca btl_tcp_if_include 10.77.0.0/24 \
		-x GOMAXPROCS=1 \
		-np 1 ip netns exec "$ns0" "$bin" --distributed mpi "$@" : \
		-np 1 ip netns exec "$ns1" "$bin" --distributed mpi "$@"
	;;
torch)
	common=(MASTER_ADDR=$ip0 MASTER_PORT=29517 WORLD_SIZE=2)
	ip netns exec "$ns1" env "${common[@]}" RANK=1 GLOO_SOCKET_IFNAME=veth1 taskset -c 1 \
		/usr/bin/python3 "$here/torch_ddp.py" --threads 1 "$@" &
	pid1=$!
	ip netns exec "$ns0" env "${common[@]}" RANK=0 GLOO_SOCKET_IFNAME=veth0 taskset -c 0 \
		/usr/bin/python3 "$here/torch_ddp.py" --threads 1 "$@"
	wait "$pid1"
	;;
esac
