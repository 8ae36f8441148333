"""The node's pod network: a bridge holding the node address, fenced in by iptables.

Called by ``kubelambda_testbed.node`` (setup, rule order, teardown) and by
``kubelambda_testbed.kafka`` (publishing its pods listener). The CNI bridge plugin attaches
every pod to ``k8s_layout.BRIDGE``; we create that bridge ourselves first because the
kubelet needs its gateway address as the node IP before any pod exists.

Three things are ours in iptables, and they stay ahead of kube-proxy's rules:

- the filter chain ``KUBELAMBDA-ISOLATE`` drops any packet to or from the pod CIDR that
  would use another interface, so pod traffic never leaves this machine whatever the
  host's routes, forwarding or kube-proxy's ACCEPT rules say;
- the nat chain ``KUBELAMBDA-LOOPBACK`` (jumped to from PREROUTING for packets arriving on
  the bridge) DNATs the few host services pods need, which listen on 127.0.0.1 only, to
  that loopback address: the apiserver at the ``kubernetes`` Service IP, and any port
  published with :func:`publish_loopback_port` (Kafka's pods listener) at the node IP.
  ``route_localnet`` on the bridge lets such a packet be routed to 127.0.0.1; nothing
  arriving on another interface gains a path there;
- a route sends the Service CIDR to the bridge, so the host reaches ClusterIPs (which
  kube-proxy DNATs to pods) from the node address, and an unknown ClusterIP never goes
  out through the host's default route.

Pod-to-Service-to-pod traffic on the one bridge relies on ``br_netfilter`` with
``bridge-nf-call-iptables=1`` (the replies are bridged, not routed), as kube-proxy does
everywhere.
"""

from __future__ import annotations

import logging
import pathlib
import re
import shlex
import subprocess

from kubelambda_testbed import k8s_layout

__all__ = [
    "CHAIN",
    "LOOPBACK_CHAIN",
    "apiserver_route",
    "isolation_rules",
    "keep_rules_first",
    "loopback_jump",
    "publish_loopback_port",
    "remove_pod_namespaces",
    "setup",
    "teardown",
    "unpublish_loopback_port",
]

_log = logging.getLogger(__name__)

CHAIN = "KUBELAMBDA-ISOLATE"
LOOPBACK_CHAIN = "KUBELAMBDA-LOOPBACK"
_PREFIX_LEN = k8s_layout.NODE_POD_CIDR.split("/")[1]
# The built-in chains holding our jumps, which kube-proxy also prepends its own to.
_JUMP_CHAINS = (("filter", "OUTPUT"), ("filter", "FORWARD"), ("nat", "PREROUTING"))


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


def loopback_jump() -> list[str]:
    """The nat PREROUTING rule sending packets that arrive on the bridge to our DNAT chain."""
    return ["PREROUTING", "-i", k8s_layout.BRIDGE, "-j", LOOPBACK_CHAIN]


def apiserver_route() -> list[str]:
    """The rule (in ``LOOPBACK_CHAIN``) that lets pods reach the loopback-bound apiserver.

    Pods get ``KUBERNETES_SERVICE_HOST`` = the ``kubernetes`` Service's IP. kube-proxy
    cannot route it: the apiserver has no address pods could use, so that Service has
    no endpoints, and this DNAT stands in for them.
    """
    return _loopback_route(
        address=k8s_layout.KUBERNETES_SERVICE_IP, port=443, target_port=k8s_layout.APISERVER_PORT
    )


def publish_loopback_port(port: int) -> bool:
    """Let pods reach ``127.0.0.1:<port>`` at ``NODE_IP:<port>`` (idempotent).

    Returns False, changing nothing, when there is no pod network (the node is down):
    its ``setup`` is then followed by a new call from whoever owns the port.
    """
    if not _bridge_exists():
        return False
    rule = _loopback_route(address=k8s_layout.NODE_IP, port=port, target_port=port)
    if not _present("nat", [LOOPBACK_CHAIN, *rule]):
        _run(["iptables", "-w", "-t", "nat", "-A", LOOPBACK_CHAIN, *rule])
        _log.info("event=loopback-port-published address=%s:%d", k8s_layout.NODE_IP, port)
    return True


def unpublish_loopback_port(port: int) -> None:
    """Remove what :func:`publish_loopback_port` added; nothing to do without a pod network."""
    if not _bridge_exists():
        return
    rule = [
        LOOPBACK_CHAIN,
        *_loopback_route(address=k8s_layout.NODE_IP, port=port, target_port=port),
    ]
    while _present("nat", rule):
        _run(["iptables", "-w", "-t", "nat", "-D", *rule])


def setup() -> None:
    """Create the bridge with the node address and install our rules and route (idempotent)."""
    bridge = k8s_layout.BRIDGE
    if _run(["ip", "link", "show", bridge], check=False).returncode != 0:
        _run(["ip", "link", "add", bridge, "type", "bridge"])
    address = f"{k8s_layout.NODE_IP}/{_PREFIX_LEN}"
    if address not in _run(["ip", "-o", "-4", "addr", "show", "dev", bridge]).stdout:
        _run(["ip", "addr", "add", address, "dev", bridge])
    _run(["ip", "link", "set", bridge, "up"])
    # Goes with the bridge when teardown deletes it.
    _run(["ip", "route", "replace", k8s_layout.SERVICE_CIDR, "dev", bridge,
          "src", k8s_layout.NODE_IP])  # fmt: skip

    chain_rules, jumps = isolation_rules()
    _ensure_chain("filter", CHAIN)
    _run(["iptables", "-w", "-F", CHAIN])
    for rule in chain_rules:
        _run(["iptables", "-w", "-A", CHAIN, *rule])
    pathlib.Path(f"/proc/sys/net/ipv4/conf/{bridge}/route_localnet").write_text("1\n")
    # Not flushed: it may already hold ports published while the node was coming up.
    _ensure_chain("nat", LOOPBACK_CHAIN)
    if not _present("nat", [LOOPBACK_CHAIN, *apiserver_route()]):
        _run(["iptables", "-w", "-t", "nat", "-A", LOOPBACK_CHAIN, *apiserver_route()])
    for table, jump in [("filter", jump) for jump in jumps] + [("nat", loopback_jump())]:
        if not _present(table, jump):
            _run(["iptables", "-w", "-t", table, "-I", *jump])
    keep_rules_first()
    _log.info("event=pod-network-ready bridge=%s node_ip=%s", bridge, k8s_layout.NODE_IP)


def keep_rules_first() -> None:
    """Move our jumps back to the head of their built-in chains, if anything went above them.

    kube-proxy prepends its own jumps at its first sync, after ``setup``; one of them
    ACCEPTs the forwarded packets it marked for masquerade, which would let a Service
    with an off-host endpoint carry pod traffic out of the machine ahead of our isolation
    chain. Copies are inserted at the head before the old ones are deleted, so no packet
    ever passes while a rule is missing.
    """
    for table, chain in _JUMP_CHAINS:
        rules = _rules(table, chain)
        ours = [rule for rule in rules if _is_ours(rule)]
        if rules[: len(ours)] == ours:
            continue
        for position, rule in enumerate(ours, start=1):
            _run(["iptables", "-w", "-t", table, "-I", chain, str(position), *rule])
        stale = [i for i, rule in enumerate(_rules(table, chain), 1) if _is_ours(rule)][len(ours) :]
        for position in reversed(stale):
            _run(["iptables", "-w", "-t", table, "-D", chain, str(position)])
        _log.info("event=rules-moved-first table=%s chain=%s rules=%d", table, chain, len(ours))


def remove_pod_namespaces() -> None:
    """Delete the network namespaces of pods attached to our bridge.

    containerd deletes them when it tears a sandbox down, but not when its containers
    were killed under it (a crash, or ``down`` after one). Each pod's host-side veth
    names its peer's namespace, which identifies the namespaces that are ours.
    """
    if not _bridge_exists():
        return
    links = _run(["ip", "-o", "link", "show", "master", k8s_layout.BRIDGE]).stdout
    for name in sorted(set(re.findall(r"link-netns (\S+)", links))):
        _log.info("event=delete-pod-netns name=%s", name)
        _run(["ip", "netns", "delete", name], check=False)


def teardown() -> None:
    """Remove the rules, the bridge and its route; whatever is already gone is fine."""
    _, jumps = isolation_rules()
    for table, rule in [("filter", jump) for jump in jumps] + [("nat", loopback_jump())]:
        while _present(table, rule):
            _run(["iptables", "-w", "-t", table, "-D", *rule])
    for table, chain in (("filter", CHAIN), ("nat", LOOPBACK_CHAIN)):
        if _run(["iptables", "-w", "-t", table, "-n", "-L", chain], check=False).returncode == 0:
            _run(["iptables", "-w", "-t", table, "-F", chain])
            _run(["iptables", "-w", "-t", table, "-X", chain])
    if _bridge_exists():
        _run(["ip", "link", "delete", k8s_layout.BRIDGE])


def _loopback_route(*, address: str, port: int, target_port: int) -> list[str]:
    return [
        "-p", "tcp", "-d", address, "--dport", str(port),
        "-j", "DNAT", "--to-destination", f"127.0.0.1:{target_port}",
    ]  # fmt: skip


def _rules(table: str, chain: str) -> list[list[str]]:
    """The rules of a built-in chain in order, each as the arguments after ``-A <chain>``."""
    listing = _run(["iptables", "-w", "-t", table, "-S", chain]).stdout.splitlines()
    return [shlex.split(line)[2:] for line in listing if line.startswith("-A ")]


def _is_ours(rule: list[str]) -> bool:
    return rule[-2:] in (["-j", CHAIN], ["-j", LOOPBACK_CHAIN])


def _ensure_chain(table: str, chain: str) -> None:
    if _run(["iptables", "-w", "-t", table, "-n", "-L", chain], check=False).returncode != 0:
        _run(["iptables", "-w", "-t", table, "-N", chain])


def _present(table: str, rule: list[str]) -> bool:
    return _run(["iptables", "-w", "-t", table, "-C", *rule], check=False).returncode == 0


def _bridge_exists() -> bool:
    return pathlib.Path("/sys/class/net", k8s_layout.BRIDGE).exists()


def _run(argv: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=check, capture_output=True, text=True)
