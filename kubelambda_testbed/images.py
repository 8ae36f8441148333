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
* ``localhost/kubelambda/platform:<12 hex>`` - the gateway, controller and dispatcher,
  built by buildah from ``platform-image/Containerfile`` on the base archive with the
  checkout's wheel and its dependencies' wheels, tagged by a digest of the sources that go
  into the wheel and the recipe. ``k8s.env`` prints it as ``KUBELAMBDA_PLATFORM_IMAGE``.

``load_missing`` builds what the cache lacks and imports into containerd what it does
not have yet: ``node.start`` calls it, and so do ``k8s.up`` on a running cluster and
``python -m kubelambda_testbed images`` (``make images``).

Pods must use ``imagePullPolicy: IfNotPresent`` or ``Never`` with these images.
"""

from __future__ import annotations

import collections.abc
import contextlib
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
import tomllib

from kubelambda_testbed import k8s_build, k8s_layout

__all__ = [
    "BASE_IMAGE",
    "PLATFORM_REPOSITORY",
    "RUNTIME_REPOSITORY",
    "debian_mirror",
    "ensure_all",
    "ensure_base_image",
    "ensure_pause_image",
    "ensure_platform_image",
    "ensure_runtime_image",
    "import_images",
    "load_missing",
    "platform_image_ref",
    "runtime_image_ref",
    "tag",
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

_CHECKOUT = pathlib.Path(__file__).resolve().parents[1]

RUNTIME_REPOSITORY = "localhost/kubelambda/runtime"
_RUNTIME_IMAGES = _CHECKOUT / "runtime-images"
_CONTAINERFILE = "python/Containerfile"
_REQUIREMENTS = "python/requirements.txt"
# Bump when ensure_runtime_image builds differently, so the tag (and the cache) changes.
_RUNTIME_BUILD = "buildah-r1"
# Runtime image tarballs kept in the cache (about 70 MB each), the newest ones.
_RUNTIME_ARCHIVES_KEPT = 4

PLATFORM_REPOSITORY = "localhost/kubelambda/platform"
_PLATFORM_CONTAINERFILE = "platform-image/Containerfile"
# Bump when ensure_platform_image builds differently, so the tag (and the cache) changes.
_PLATFORM_BUILD = "buildah-r1"
# Platform image tarballs kept in the cache, the newest ones (as for the runtime image);
# dependency wheel sets kept, the newest ones (one per dependency list).
_PLATFORM_ARCHIVES_KEPT = 4
_DEPENDENCY_SETS_KEPT = 2


def ensure_all(layout: k8s_layout.Layout) -> dict[str, pathlib.Path]:
    """Every image the node needs, by name, as cached OCI tarballs."""
    return {
        k8s_layout.PAUSE_IMAGE: ensure_pause_image(layout),
        BASE_IMAGE: ensure_base_image(layout),
        runtime_image_ref(layout): ensure_runtime_image(layout),
        platform_image_ref(layout): ensure_platform_image(layout),
    }


def load_missing(layout: k8s_layout.Layout) -> None:
    """Build the images the cache lacks, import those containerd does not have (by name),
    and name this checkout's runtime and platform images ``:latest`` too: the defaults of
    ``KUBELAMBDA_RUNTIME_IMAGE`` and of the Helm chart's ``image.tag``."""
    loaded = set(_ctr(layout, "images", "ls", "-q").split())
    archives = ensure_all(layout)
    import_images(layout, [a for name, a in archives.items() if name not in loaded])
    for ref in (runtime_image_ref(layout), platform_image_ref(layout)):
        tag(layout, source=ref, target=f"{ref.rpartition(':')[0]}:latest")


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
    digest = _content_digest(_RUNTIME_BUILD, _base_archive(layout), _runtime_sources())
    return f"{RUNTIME_REPOSITORY}:{digest}"


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
        context = pathlib.Path(tmp, "context")
        # Exactly the files the tag was made of: no __pycache__ or stray files of the checkout.
        _copy_files(_runtime_sources(), context)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             *_wheel_selection(), "--requirement", str(context / _REQUIREMENTS),
             "--dest", str(context / "python" / "wheels")],
            check=True,
        )  # fmt: skip
        _buildah_archive(
            pathlib.Path(tmp),
            context=context,
            containerfile=context / _CONTAINERFILE,
            ref=ref,
            base=base,
            archive=archive,
        )
    _prune(layout.images_dir, "runtime-*.tar", keep=_RUNTIME_ARCHIVES_KEPT)
    return archive


def _prune(directory: pathlib.Path, pattern: str, *, keep: int) -> None:
    # Several checkouts (worktrees, CI) share the cache, each with its own sources: keeping a
    # few spares that one from rebuilding after another, and from losing its tarball
    # between its build and its import.
    entries = sorted(directory.glob(pattern), key=lambda p: p.stat().st_mtime)
    for stale in entries[:-keep]:
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


def _runtime_sources() -> dict[str, pathlib.Path]:
    """The build context's files, by their name in it."""
    agent = sorted((_RUNTIME_IMAGES / "agent" / "kubelambda_agent").glob("*.py"))
    files = {f"agent/kubelambda_agent/{path.name}": path for path in agent}
    for name in (_CONTAINERFILE, _REQUIREMENTS):
        files[name] = _RUNTIME_IMAGES / name
    return files


def platform_image_ref(layout: k8s_layout.Layout) -> str:
    """``localhost/kubelambda/platform:<12 hex>``: a digest of everything the image is made
    of (the sources of the checkout's wheel, the Containerfile, the base, this build). The
    dependencies enter through pyproject.toml's list, not through the wheels it resolves to."""
    digest = _content_digest(_PLATFORM_BUILD, _base_archive(layout), _platform_sources())
    return f"{PLATFORM_REPOSITORY}:{digest}"


def ensure_platform_image(layout: k8s_layout.Layout) -> pathlib.Path:
    """The platform image tarball, built with buildah on the base archive when the cache
    has none for this content (about 20 s): the checkout's wheel (built by pip from a copy
    of exactly the tagged sources) and the cached dependency wheels, installed without
    network inside the build. Only the newest few are kept."""
    ref = platform_image_ref(layout)
    archive = layout.images_dir / f"platform-{ref.rpartition(':')[2]}.tar"
    if archive.exists():
        return archive
    base = ensure_base_image(layout)
    dependencies = _dependency_wheels(layout)
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kubelambda-platform-", dir=archive.parent) as tmp:
        source, context = pathlib.Path(tmp, "source"), pathlib.Path(tmp, "context")
        _copy_files(_platform_sources(), source)
        wheels = context / "wheels"
        # The build's own requirements come from the cached folder too: no index needed.
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
             "--no-index", "--find-links", str(dependencies),
             "--wheel-dir", str(wheels), str(source)],
            check=True,
        )  # fmt: skip
        for wheel in dependencies.glob("*.whl"):
            shutil.copy2(wheel, wheels / wheel.name)
        _buildah_archive(
            pathlib.Path(tmp),
            context=context,
            containerfile=source / _PLATFORM_CONTAINERFILE,
            ref=ref,
            base=base,
            archive=archive,
        )
    _prune(layout.images_dir, "platform-*.tar", keep=_PLATFORM_ARCHIVES_KEPT)
    return archive


def _platform_sources() -> dict[str, pathlib.Path]:
    """The files of the checkout the platform image is made of, by their path in it:
    pyproject.toml and the readme (the wheel's metadata), every file in the folders of the
    packages pyproject lists for the wheel, and the Containerfile."""
    pyproject = tomllib.loads((_CHECKOUT / "pyproject.toml").read_text())
    setuptools = pyproject["tool"]["setuptools"]
    names = ["pyproject.toml", pyproject["project"]["readme"], _PLATFORM_CONTAINERFILE]
    files = {name: _CHECKOUT / name for name in names}
    for package in setuptools["packages"]:
        folder = _CHECKOUT / _package_folder(package, setuptools.get("package-dir", {}))
        for path in sorted(folder.rglob("*")):
            relative = path.relative_to(_CHECKOUT)
            # Byte code and dot-folders (caches, a local run's state) are not sources.
            skipped = any(part == "__pycache__" or part.startswith(".") for part in relative.parts)
            if path.is_file() and not skipped and path.suffix != ".pyc":
                files[relative.as_posix()] = path
    return files


def _package_folder(package: str, package_dir: dict[str, str]) -> str:
    """Where setuptools finds ``package``: under its nearest ancestor in ``package-dir``
    (the root package being ``""``), else at its dotted path."""
    parts = package.split(".")
    for cut in range(len(parts), -1, -1):
        mapped = package_dir.get(".".join(parts[:cut]))
        if mapped is not None:
            return "/".join(part for part in (mapped, *parts[cut:]) if part)
    return "/".join(parts)


def _dependency_wheels(layout: k8s_layout.Layout) -> pathlib.Path:
    """A folder of the wheels of the checkout's runtime dependencies (not the dev extras),
    pip's own and the wheel build's (setuptools), for bookworm's python3: downloaded once
    per list of requirements, so warm builds use no network."""
    pyproject = tomllib.loads((_CHECKOUT / "pyproject.toml").read_text())
    requirements = [
        *pyproject["project"]["dependencies"],
        "pip",
        *pyproject["build-system"]["requires"],
    ]
    key = hashlib.sha256("\0".join([*requirements, *_wheel_selection()]).encode())
    folder = layout.cache_dir / f"platform-wheels-{key.hexdigest()[:12]}"
    if not folder.exists():
        layout.cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="kubelambda-wheels-", dir=layout.cache_dir) as tmp:
            partial = pathlib.Path(tmp, "wheels")
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--quiet", *_wheel_selection(),
                 "--dest", str(partial), *requirements],
                check=True,
            )  # fmt: skip
            # A concurrent build may have made it meanwhile: the same list, the same wheels.
            with contextlib.suppress(OSError):
                partial.rename(folder)
    # The prune below goes by age: a set in use is the newest.
    folder.touch()
    _prune(layout.cache_dir, "platform-wheels-*", keep=_DEPENDENCY_SETS_KEPT)
    return folder


def _content_digest(build: str, base: pathlib.Path, sources: dict[str, pathlib.Path]) -> str:
    """12 hex of a SHA-256 over the build's name, the base archive's name and each source's
    name and content."""
    digest = hashlib.sha256(f"{build}\0{base.name}\0".encode())
    for name, path in sources.items():
        content = path.read_bytes()
        digest.update(f"{name}\0{len(content)}\0".encode())
        digest.update(content)
    return digest.hexdigest()[:12]


def _copy_files(files: dict[str, pathlib.Path], destination: pathlib.Path) -> None:
    """Copy each file to its name under ``destination``."""
    for name, path in files.items():
        (destination / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, destination / name)


def _buildah_archive(
    tmp: pathlib.Path,
    *,
    context: pathlib.Path,
    containerfile: pathlib.Path,
    ref: str,
    base: pathlib.Path,
    archive: pathlib.Path,
) -> None:
    """Build ``containerfile`` on the base archive with buildah (no daemon, no pull) and
    tar the image into the cache as ``archive``, named ``ref``."""
    # Storage of its own, deleted with the temporary directory: the tarball is the cache.
    buildah = ["buildah", "--root", f"{tmp}/storage", "--runroot", f"{tmp}/run",
               "--storage-driver", "vfs"]  # fmt: skip
    subprocess.run(
        [*buildah, "build", "--quiet", "--isolation", "oci",
         "--ulimit", "nofile=10000:10000", "--ulimit", "nproc=10000:10000",
         "--build-arg", f"BASE_IMAGE=oci-archive:{base}",
         "--tag", ref, "--file", str(containerfile), str(context)],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    layout_dir = tmp / "oci"
    subprocess.run([*buildah, "push", "--quiet", ref, f"oci:{layout_dir}:{ref}"], check=True)
    _pack_oci_layout(layout_dir, archive=archive, name=ref)


def _wheel_selection() -> list[str]:
    """``pip download`` options for binary wheels bookworm's python3 runs: CPython 3.11 and
    every manylinux tag its glibc (2.36) runs, since pip takes only the tags it is given,
    not the older ones a newer glibc implies."""
    arch = platform.machine()
    options = ["--only-binary=:all:", "--implementation", "cp", "--python-version", _SUITE_PYTHON]
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


def tag(layout: k8s_layout.Layout, *, source: str, target: str) -> None:
    """Name the loaded image ``source`` also ``target`` (replacing an older ``target``)."""
    _ctr(layout, "images", "tag", "--force", source, target)


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
