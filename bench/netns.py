"""Several "hosts" on one machine: Linux network namespaces on a bridge, made and removed by the caller.

Each :class:`Host` is a network namespace with one veth link to a bridge in the root namespace; the
bridge's address is where shared servers (Redis, a git daemon) listen for the hosts. A host can be cut
off (its link set down: packets to and from it vanish, as in a partition) and brought back. Processes
run in a host through ``ip netns exec <namespace>`` (:attr:`Host.launcher`), which also gives the host
its own ``/etc/hosts`` when :meth:`Host.name_servers` wrote one (``/etc/netns/<namespace>/hosts``).

Needs root (``CAP_NET_ADMIN``) and iproute2; :func:`netns_unavailable` says why not otherwise.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

NETNS_ETC = Path("/etc/netns")


class NetnsError(RuntimeError):
    """A namespace, link or address could not be made."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    if check and done.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done


def netns_unavailable() -> str | None:
    """Why several hosts cannot be made here (a reason to skip with), or None."""
    if shutil.which("ip") is None:
        return "iproute2 (the ip command) is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root (CAP_NET_ADMIN); CI runs as root"
    probe = f"swprobe{random.randrange(10**6)}"
    done = _ip("netns", "add", probe, check=False)
    if done.returncode != 0:
        return f"cannot create a network namespace here: {done.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return None


@dataclass
class Host:
    """One namespace on the bridge: its name, its address and the root side of its link."""

    namespace: str
    address: str
    link: str  # the veth end in the root namespace, attached to the bridge

    @property
    def launcher(self) -> list[str]:
        """Prefix that runs a command in this host."""
        return [shutil.which("ip") or "/usr/sbin/ip", "netns", "exec", self.namespace]  # a child's PATH may lack sbin

    def cut(self) -> None:
        """Partition the host: its link goes down, in-flight packets are lost, connections hang."""
        _ip("link", "set", self.link, "down")

    def restore(self) -> None:
        _ip("link", "set", self.link, "up")

    def name_servers(self, names: dict[str, str]) -> None:
        """Give the host an ``/etc/hosts`` (name -> address), seen by processes started in it."""
        folder = NETNS_ETC / self.namespace
        folder.mkdir(parents=True, exist_ok=True)
        lines = ["127.0.0.1 localhost", *(f"{address} {name}" for name, address in names.items())]
        (folder / "hosts").write_text("\n".join(lines) + "\n")


@dataclass
class Network:
    """A bridge and ``count`` hosts on a random private /24; :meth:`stop` removes everything it made."""

    count: int
    tag: str = field(default_factory=lambda: f"sw{random.randrange(36**4):04x}"[:6])
    hosts: list[Host] = field(default_factory=list)
    bridge_address: str = ""

    @property
    def bridge(self) -> str:
        return f"{self.tag}br"

    def start(self) -> Network:
        subnet = _free_subnet()
        self.bridge_address = str(subnet.network_address + 1)
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            _ip("addr", "add", f"{self.bridge_address}/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            for i in range(self.count):
                host = Host(f"{self.tag}h{i}", str(subnet.network_address + 10 + i), f"{self.tag}v{i}")
                self.hosts.append(host)
                _ip("netns", "add", host.namespace)
                _ip("link", "add", host.link, "type", "veth", "peer", "name", "eth0", "netns", host.namespace)
                _ip("link", "set", host.link, "master", self.bridge, "up")
                _ip("-n", host.namespace, "addr", "add", f"{host.address}/24", "dev", "eth0")
                _ip("-n", host.namespace, "link", "set", "eth0", "up")
                _ip("-n", host.namespace, "link", "set", "lo", "up")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for host in self.hosts:
            _ip("netns", "del", host.namespace, check=False)  # takes its veth pair with it
            with contextlib.suppress(OSError):
                shutil.rmtree(NETNS_ETC / host.namespace)
        _ip("link", "del", self.bridge, check=False)
        self.hosts.clear()

    def __enter__(self) -> Network:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _free_subnet() -> ipaddress.IPv4Network:
    """A 10.x.y.0/24 that no interface of this machine is in."""
    used = [ipaddress.ip_interface(word).network for line in _ip("-4", "-o", "addr").stdout.splitlines()
            for i, word in enumerate(line.split()) if i > 0 and line.split()[i - 1] == "inet"]
    for _ in range(100):
        subnet = ipaddress.ip_network(f"10.{random.randrange(100, 250)}.{random.randrange(256)}.0/24")
        if not any(subnet.overlaps(net) for net in used):
            return subnet
    raise NetnsError("no free 10.x.y.0/24 subnet for the test network")
