"""Build the node's container images from Debian packages and load them into containerd.

Called by ``kubelambda_testbed.node`` while bringing the node up. Nothing can be pulled on
these machines, so the images are made here and cached as OCI-layout tarballs:

* ``localhost/kubelambda/base:latest`` - Debian bookworm ``minbase`` plus python3,
  bootstrapped from the apt mirror this machine already uses. Runtime images of
  later issues build on top of it.
* ``localhost/kubelambda/pause:3.10`` - the pod sandbox: our static ``pause``
  program alone in an otherwise empty image.
* ``localhost/kubelambda/runtime:<12 hex>`` - the function runtime image, built by
  buildah from ``runtime-images/python/Containerfile`` on the base archive (no daemon, no
  pull), and tagged by a digest of the agent's sources and the recipe, so changing the
  agent makes a new image. ``k8s.env`` prints it as ``KUBELAMBDA_RUNTIME_IMAGE``.

``load_missing`` builds what the cache lacks and imports into containerd what it does
not have yet: ``node.start`` calls it, and so do ``k8s.up`` on a running cluster and
``python -m kubelambda_testbed images`` (``make images``).

Pods must use ``imagePullPolicy: IfNotPresent`` or ``Never`` with these images.
"""

from __future__ import annotations

import collections.abc
import hashlib
import json
import logging
import pathlib
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

from kubelambda_testbed import k8s_build, k8s_layout

__all__ = [
    "BASE_IMAGE",
    "RUNTIME_REPOSITORY",
    "debian_mirror",
    "ensure_all",
    "ensure_base_image",
    "ensure_pause_image",
    "ensure_runtime_image",
    "import_images",
    "load_missing",
    "runtime_image_ref",
]

_log = logging.getLogger(__name__)

BASE_IMAGE = "localhost/kubelambda/base:latest"
_SUITE = "bookworm"
# bookworm's python3: the wheels of the runtime image's agent are chosen for it.
_SUITE_PYTHON = "3.11"
_BASE_PACKAGES = ("python3", "ca-certificates")
# Bump when the recipe changes so warm caches rebuild the tarball.
_BASE_RECIPE = f"base-{_SUITE}-{'-'.join(_BASE_PACKAGES)}-r1"
Populate = collections.abc.Callable[[pathlib.Path], None]
"""Fills an image's empty root filesystem."""

_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

RUNTIME_REPOSITORY = "localhost/kubelambda/runtime"
_RUNTIME_IMAGES = pathlib.Path(__file__).resolve().parents[1] / "runtime-images"
_CONTAINERFILE = "python/Containerfile"
_REQUIREMENTS = "python/requirements.txt"
# Bump when ensure_runtime_image builds differently, so the tag (and the cache) changes.
_RUNTIME_BUILD = "buildah-r1"
# Runtime image tarballs kept in the cache (about 70 MB each), the newest ones.
_RUNTIME_ARCHIVES_KEPT = 4


def ensure_all(layout: k8s_layout.Layout) -> dict[str, pathlib.Path]:
    """Every image the node needs, by name, as cached OCI tarballs."""
    return {
        k8s_layout.PAUSE_IMAGE: ensure_pause_image(layout),
        BASE_IMAGE: ensure_base_image(layout),
        runtime_image_ref(layout): ensure_runtime_image(layout),
    }


def load_missing(layout: k8s_layout.Layout) -> None:
    """Build the images the cache lacks, import those containerd does not have (by name)."""
    loaded = set(_ctr(layout, "images", "ls", "-q").split())
    archives = ensure_all(layout)
    import_images(layout, [a for name, a in archives.items() if name not in loaded])


def ensure_base_image(layout: k8s_layout.Layout) -> pathlib.Path:
    """The base image tarball, bootstrapping it on a cold cache (a few minutes)."""
    archive = _base_archive(layout)
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


def runtime_image_ref(layout: k8s_layout.Layout) -> str:
    """``localhost/kubelambda/runtime:<12 hex>``: a digest of everything the image is made
    of (the agent's sources, the Containerfile, the pinned wheels, the base, this build)."""
    digest = hashlib.sha256(f"{_RUNTIME_BUILD}\0{_base_archive(layout).name}\0".encode())
    for name, path in _runtime_sources().items():
        content = path.read_bytes()
        digest.update(f"{name}\0{len(content)}\0".encode())
        digest.update(content)
    return f"{RUNTIME_REPOSITORY}:{digest.hexdigest()[:12]}"


def ensure_runtime_image(layout: k8s_layout.Layout) -> pathlib.Path:
    """The runtime image tarball, built with buildah on the base archive when the cache
    has none for this content (a few seconds); only the newest few are kept."""
    ref = runtime_image_ref(layout)
    archive = layout.images_dir / f"runtime-{ref.rpartition(':')[2]}.tar"
    if archive.exists():
        return archive
    base = ensure_base_image(layout)
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kubelambda-runtime-", dir=archive.parent) as tmp:
        context, layout_dir = pathlib.Path(tmp, "context"), pathlib.Path(tmp, "oci")
        # Exactly the files the tag was made of: no __pycache__ or stray files of the checkout.
        for name, path in _runtime_sources().items():
            (context / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, context / name)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--only-binary=:all:", "--implementation", "cp",
             "--python-version", _SUITE_PYTHON, *_wheel_platforms(),
             "--requirement", str(context / _REQUIREMENTS),
             "--dest", str(context / "python" / "wheels")],
            check=True,
        )  # fmt: skip
        # Storage of its own, deleted with the temporary directory: the tarball is the cache.
        buildah = ["buildah", "--root", f"{tmp}/storage", "--runroot", f"{tmp}/run",
                   "--storage-driver", "vfs"]  # fmt: skip
        subprocess.run(
            [*buildah, "build", "--quiet", "--isolation", "oci",
             "--ulimit", "nofile=10000:10000", "--ulimit", "nproc=10000:10000",
             "--build-arg", f"BASE_IMAGE=oci-archive:{base}",
             "--tag", ref, "--file", str(context / _CONTAINERFILE), str(context)],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        subprocess.run([*buildah, "push", "--quiet", ref, f"oci:{layout_dir}:{ref}"], check=True)
        _pack_oci_layout(layout_dir, archive=archive, name=ref)
    _prune_runtime_archives(layout.images_dir)
    return archive


def _prune_runtime_archives(images_dir: pathlib.Path) -> None:
    # Several checkouts (worktrees, CI) share the cache, each with its own agent: keeping a
    # few spares that one from rebuilding after another, and from losing its tarball
    # between its build and its import.
    archives = sorted(images_dir.glob("runtime-*.tar"), key=lambda p: p.stat().st_mtime)
    for stale in archives[:-_RUNTIME_ARCHIVES_KEPT]:
        stale.unlink(missing_ok=True)


def _runtime_sources() -> dict[str, pathlib.Path]:
    """The build context's files, by their name in it."""
    agent = sorted((_RUNTIME_IMAGES / "agent" / "kubelambda_agent").glob("*.py"))
    files = {f"agent/kubelambda_agent/{path.name}": path for path in agent}
    for name in (_CONTAINERFILE, _REQUIREMENTS):
        files[name] = _RUNTIME_IMAGES / name
    return files


def _wheel_platforms() -> list[str]:
    """``--platform`` options for every manylinux tag bookworm's glibc (2.36) runs: pip
    takes only the tags it is given, not the older ones a newer glibc implies."""
    arch = platform.machine()
    options = []
    for minor in range(36, 4, -1):
        options += ["--platform", f"manylinux_2_{minor}_{arch}"]
    return options


def _base_archive(layout: k8s_layout.Layout) -> pathlib.Path:
    return layout.images_dir / f"{_BASE_RECIPE}.tar"


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


def _ctr(layout: k8s_layout.Layout, *args: str) -> str:
    return subprocess.run(
        ["ctr", "--address", str(layout.containerd_socket), "-n", "k8s.io", *args],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip


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
        _pack_oci_layout(layout_dir, archive=archive, name=name)


def _pack_oci_layout(layout_dir: pathlib.Path, *, archive: pathlib.Path, name: str) -> None:
    """Name the layout's image for containerd and tar it into the cache, atomically."""
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
