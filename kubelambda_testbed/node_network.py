"""The node's pod network: a bridge holding the node address, fenced in by iptables.

Called by ``kubelambda_testbed.node``. The CNI bridge plugin attaches every pod to
``k8s_layout.BRIDGE``; we create that bridge ourselves first because the kubelet
needs its gateway address as the node IP before any pod exists. One iptables chain
then drops any packet to or from the pod CIDR that would use another interface, so
pod traffic never leaves this machine whatever the host's routes or forwarding say.
"""

from __future__ import annotations

import logging
import pathlib
import re
import subprocess

from kubelambda_testbed import k8s_layout

__all__ = [
    "CHAIN",
    "apiserver_route",
    "isolation_rules",
    "remove_pod_namespaces",
    "setup",
    "teardown",
]

_log = logging.getLogger(__name__)

CHAIN = "KUBELAMBDA-ISOLATE"
_PREFIX_LEN = k8s_layout.NODE_POD_CIDR.split("/")[1]


def isolation_rules() -> tuple[list[list[str]], list[list[str]]]:
    """(rules of our chain, jumps into it from the built-in chains)."""
    chain_rules = [
        ["-o", k8s_layout.BRIDGE, "-j", "RETURN"],
        # The node's own bridge address is delivered through lo, never onto a wire.
        ["-m", "addrtype", "--dst-type", "LOCAL", "-j", "RETURN"],
        ["-j", "DROP"],
    ]
    jumps = [
        ["OUTPUT", "-d", k8s_layout.POD_CIDR, "-j", CHAIN],
        ["FORWARD", "-d", k8s_layout.POD_CIDR, "-j", CHAIN],
        ["FORWARD", "-s", k8s_layout.POD_CIDR, "-j", CHAIN],
    ]
    return chain_rules, jumps


def apiserver_route() -> list[str]:
    """The nat rule that lets pods reach the loopback-bound apiserver at its Service IP.

    Pods get ``KUBERNETES_SERVICE_HOST`` = the ``kubernetes`` Service's IP; with no
    kube-proxy, this one DNAT (plus ``route_localnet`` on the bridge, which lets a
    packet from the bridge be routed to 127.0.0.1) stands in for it. Only traffic
    arriving on the bridge matches, so nothing else gains a path to 127.0.0.1.
    """
    return [
        "PREROUTING", "-i", k8s_layout.BRIDGE, "-p", "tcp",
        "-d", k8s_layout.KUBERNETES_SERVICE_IP, "--dport", "443",
        "-j", "DNAT", "--to-destination", f"127.0.0.1:{k8s_layout.APISERVER_PORT}",
    ]  # fmt: skip


def setup() -> None:
    """Create the bridge with the node address and install the isolation rules (idempotent)."""
    bridge = k8s_layout.BRIDGE
    if _run(["ip", "link", "show", bridge], check=False).returncode != 0:
        _run(["ip", "link", "add", bridge, "type", "bridge"])
    address = f"{k8s_layout.NODE_IP}/{_PREFIX_LEN}"
    if address not in _run(["ip", "-o", "-4", "addr", "show", "dev", bridge]).stdout:
        _run(["ip", "addr", "add", address, "dev", bridge])
    _run(["ip", "link", "set", bridge, "up"])

    chain_rules, jumps = isolation_rules()
    if _run(["iptables", "-w", "-n", "-L", CHAIN], check=False).returncode != 0:
        _run(["iptables", "-w", "-N", CHAIN])
    _run(["iptables", "-w", "-F", CHAIN])
    for rule in chain_rules:
        _run(["iptables", "-w", "-A", CHAIN, *rule])
    for jump in jumps:
        if _run(["iptables", "-w", "-C", *jump], check=False).returncode != 0:
            _run(["iptables", "-w", "-I", *jump])
    pathlib.Path(f"/proc/sys/net/ipv4/conf/{bridge}/route_localnet").write_text("1\n")
    route = apiserver_route()
    if _run(["iptables", "-w", "-t", "nat", "-C", *route], check=False).returncode != 0:
        _run(["iptables", "-w", "-t", "nat", "-I", *route])
    _log.info("event=pod-network-ready bridge=%s node_ip=%s", bridge, k8s_layout.NODE_IP)


def remove_pod_namespaces() -> None:
    """Delete the network namespaces of pods attached to our bridge.

    containerd deletes them when it tears a sandbox down, but not when its containers
    were killed under it (a crash, or ``down`` after one). Each pod's host-side veth
    names its peer's namespace, which identifies the namespaces that are ours.
    """
    if _run(["ip", "link", "show", k8s_layout.BRIDGE], check=False).returncode != 0:
        return
    links = _run(["ip", "-o", "link", "show", "master", k8s_layout.BRIDGE]).stdout
    for name in sorted(set(re.findall(r"link-netns (\S+)", links))):
        _log.info("event=delete-pod-netns name=%s", name)
        _run(["ip", "netns", "delete", name], check=False)


def teardown() -> None:
    """Remove the rules and the bridge; whatever is already gone is fine."""
    _, jumps = isolation_rules()
    rules = [("filter", jump) for jump in jumps] + [("nat", apiserver_route())]
    for table, rule in rules:
        while _run(["iptables", "-w", "-t", table, "-C", *rule], check=False).returncode == 0:
            _run(["iptables", "-w", "-t", table, "-D", *rule])
    if _run(["iptables", "-w", "-n", "-L", CHAIN], check=False).returncode == 0:
        _run(["iptables", "-w", "-F", CHAIN])
        _run(["iptables", "-w", "-X", CHAIN])
    if _run(["ip", "link", "show", k8s_layout.BRIDGE], check=False).returncode == 0:
        _run(["ip", "link", "delete", k8s_layout.BRIDGE])


def _run(argv: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=check, capture_output=True, text=True)
