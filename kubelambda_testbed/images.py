"""Build the node's container images from Debian packages and load them into containerd.

Called by ``kubelambda_testbed.node`` while bringing the node up. Nothing can be pulled on
these machines, so the images are made here and cached as OCI-layout tarballs:

* ``localhost/kubelambda/base:latest`` - Debian bookworm ``minbase`` plus python3,
  bootstrapped from the apt mirror this machine already uses. Runtime images of
  later issues build on top of it.
* ``localhost/kubelambda/pause:3.10`` - the pod sandbox: our static ``pause``
  program alone in an otherwise empty image.

Pods must use ``imagePullPolicy: IfNotPresent`` or ``Never`` with these images.
"""

from __future__ import annotations

import collections.abc
import json
import logging
import pathlib
import re
import shutil
import subprocess
import tarfile
import tempfile
import time

from kubelambda_testbed import k8s_build, k8s_layout

__all__ = [
    "BASE_IMAGE",
    "debian_mirror",
    "ensure_all",
    "ensure_base_image",
    "ensure_pause_image",
    "import_images",
]

_log = logging.getLogger(__name__)

BASE_IMAGE = "localhost/kubelambda/base:latest"
_SUITE = "bookworm"
_BASE_PACKAGES = ("python3", "ca-certificates")
# Bump when the recipe changes so warm caches rebuild the tarball.
_BASE_RECIPE = f"base-{_SUITE}-{'-'.join(_BASE_PACKAGES)}-r1"
Populate = collections.abc.Callable[[pathlib.Path], None]
"""Fills an image's empty root filesystem."""

_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def ensure_all(layout: k8s_layout.Layout) -> dict[str, pathlib.Path]:
    """Every image the node needs, by name, as cached OCI tarballs."""
    return {
        k8s_layout.PAUSE_IMAGE: ensure_pause_image(layout),
        BASE_IMAGE: ensure_base_image(layout),
    }


def ensure_base_image(layout: k8s_layout.Layout) -> pathlib.Path:
    """The base image tarball, bootstrapping it on a cold cache (a few minutes)."""
    archive = layout.images_dir / f"{_BASE_RECIPE}.tar"
    if archive.exists():
        return archive

    def populate(rootfs: pathlib.Path) -> None:
        mirror = debian_mirror()
        _log.info("event=debootstrap suite=%s mirror=%s", _SUITE, mirror)
        subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(_BASE_PACKAGES)}",
             _SUITE, str(rootfs), mirror],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        # Package caches only bloat every image built on top.
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (rootfs / leftover).glob("*"):
                if path.is_file():
                    path.unlink()

    _build_oci_archive(
        archive,
        name=BASE_IMAGE,
        populate=populate,
        config=["--config.env", f"PATH={_PATH}", "--config.env", "LANG=C.UTF-8",
                "--config.cmd", "python3"],
    )  # fmt: skip
    return archive


def ensure_pause_image(layout: k8s_layout.Layout) -> pathlib.Path:
    """The pause image tarball (scratch + our static pause binary)."""
    archive = layout.images_dir / f"pause-{k8s_build.pause_digest(layout)}.tar"
    if archive.exists():
        return archive
    pause = k8s_build.ensure_pause(layout)

    def populate(rootfs: pathlib.Path) -> None:
        shutil.copy2(pause, rootfs / "pause")

    _build_oci_archive(
        archive,
        name=k8s_layout.PAUSE_IMAGE,
        populate=populate,
        config=["--config.entrypoint", "/pause", "--config.user", "65535:65535"],
    )
    return archive


def import_images(layout: k8s_layout.Layout, archives: list[pathlib.Path]) -> None:
    """Load OCI tarballs into containerd's ``k8s.io`` namespace, where the kubelet looks."""
    for archive in archives:
        started = time.monotonic()
        subprocess.run(
            ["ctr", "--address", str(layout.containerd_socket), "-n", "k8s.io",
             "images", "import", str(archive)],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        seconds = time.monotonic() - started
        _log.info("event=image-imported archive=%s seconds=%.1f", archive.name, seconds)


def debian_mirror(sources: pathlib.Path = pathlib.Path("/etc/apt")) -> str:
    """The first mirror serving ``bookworm`` in this machine's apt sources."""
    files = [
        *sorted(sources.glob("sources.list.d/*.sources")),
        sources / "sources.list",
        *sorted(sources.glob("sources.list.d/*.list")),
    ]
    for path in files:
        if not path.exists():
            continue
        text = path.read_text()
        # deb822 stanzas: "URIs: ..." and "Suites: ..." in one paragraph
        for stanza in re.split(r"\n\s*\n", text):
            fields = dict(re.findall(r"^(\w+):\s*(.+)$", stanza, flags=re.MULTILINE))
            types, suites = fields.get("Types", "").split(), fields.get("Suites", "").split()
            if "deb" in types and _SUITE in suites:
                return str(fields["URIs"].split()[0])
        # one-line format: "deb [options] URI suite components"
        for match in re.finditer(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)", text, re.MULTILINE):
            if match.group(2) == _SUITE:
                return match.group(1)
    raise RuntimeError(f"no apt source for {_SUITE} under {sources}")


def _build_oci_archive(
    archive: pathlib.Path,
    *,
    name: str,
    populate: Populate,
    config: list[str],
) -> None:
    """Make a one-layer OCI image with umoci, name it for containerd, tar it into the cache."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kubelambda-image-", dir=archive.parent) as tmp:
        layout_dir, bundle = pathlib.Path(tmp, "oci"), pathlib.Path(tmp, "bundle")
        image = f"{layout_dir}:latest"
        subprocess.run(["umoci", "init", "--layout", str(layout_dir)], check=True)
        subprocess.run(["umoci", "new", "--image", image], check=True)
        subprocess.run(["umoci", "unpack", "--image", image, str(bundle)], check=True)
        populate(bundle / "rootfs")
        subprocess.run(["umoci", "repack", "--image", image, str(bundle)], check=True)
        subprocess.run(["umoci", "config", "--image", image, *config], check=True)
        subprocess.run(["umoci", "gc", "--layout", str(layout_dir)], check=True)
        _name_for_containerd(layout_dir / "index.json", name)
        partial = archive.with_suffix(".partial")
        with tarfile.open(partial, "w") as tar:
            for entry in sorted(layout_dir.iterdir()):
                tar.add(entry, arcname=entry.name)
        partial.replace(archive)
    _log.info("event=image-built image=%s archive=%s", name, archive)


def _name_for_containerd(index_path: pathlib.Path, name: str) -> None:
    # `ctr images import` takes the full image name from this annotation; the OCI
    # ref.name alone ("latest") would need a --base-name at every import.
    index = json.loads(index_path.read_text())
    for manifest in index["manifests"]:
        manifest.setdefault("annotations", {})["io.containerd.image.name"] = name
    index_path.write_text(json.dumps(index))
