"""The node's pod network: a bridge holding the node address, fenced in by iptables.

Called by ``testinfra.node``. The CNI bridge plugin attaches every pod to
``k8s_layout.BRIDGE``; we create that bridge ourselves first because the kubelet
needs its gateway address as the node IP before any pod exists. One iptables chain
then drops any packet to or from the pod CIDR that would use another interface, so
pod traffic never leaves this machine whatever the host's routes or forwarding say.
"""

from __future__ import annotations

import logging
import re
import subprocess

from testinfra import k8s_layout

__all__ = ["CHAIN", "isolation_rules", "remove_pod_namespaces", "setup", "teardown"]

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
    for jump in jumps:
        while _run(["iptables", "-w", "-C", *jump], check=False).returncode == 0:
            _run(["iptables", "-w", "-D", *jump])
    if _run(["iptables", "-w", "-n", "-L", CHAIN], check=False).returncode == 0:
        _run(["iptables", "-w", "-F", CHAIN])
        _run(["iptables", "-w", "-X", CHAIN])
    if _run(["ip", "link", "show", k8s_layout.BRIDGE], check=False).returncode == 0:
        _run(["ip", "link", "delete", k8s_layout.BRIDGE])


def _run(argv: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=check, capture_output=True, text=True)
