"""The platform image's tag: a digest of exactly the sources of the checkout's wheel and the
recipe, found the way setuptools finds the packages."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from kubelambda_testbed import images, k8s_layout

ROOT = Path(__file__).resolve().parents[3]


def layout(tmp_path: Path) -> k8s_layout.Layout:
    return k8s_layout.Layout(state_dir=tmp_path / "state", cache_dir=tmp_path / "cache")


def test_tag_is_12_hex_of_the_content_and_stable(tmp_path: Path) -> None:
    first = images.platform_image_ref(layout(tmp_path))

    assert re.fullmatch(r"localhost/kubelambda/platform:[0-9a-f]{12}", first)
    assert images.platform_image_ref(layout(tmp_path)) == first


def test_sources_are_the_wheels_packages_with_their_data_and_the_recipe() -> None:
    sources = images._platform_sources()

    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    for package in packages["packages"]:
        folder = images._package_folder(package, packages["package-dir"])
        assert f"{folder}/__init__.py" in sources, package
    assert {"pyproject.toml", "README.md", "platform-image/Containerfile"} <= set(sources)
    assert "runtime-images/agent/kubelambda_agent/fetch_code.py" in sources
    assert "examples/hello/app.py" in sources
    assert any(re.fullmatch(r"kubelambda/kubernetes/crds/.+\.yaml", name) for name in sources)
    assert not [name for name in sources if "__pycache__" in name or name.endswith(".pyc")]
    assert all(path == ROOT / name for name, path in sources.items())


@pytest.mark.parametrize(
    ("package", "package_dir", "folder"),
    [
        ("gateway.api", {}, "gateway/api"),
        ("kubelambda.examples", {"kubelambda.examples": "examples"}, "examples"),
        ("kubelambda.kafka", {"kubelambda.examples": "examples"}, "kubelambda/kafka"),
        ("a.b.c", {"a.b": "lib/b"}, "lib/b/c"),
        ("a.b", {"": "src"}, "src/a/b"),
    ],
)
def test_package_folder_is_where_setuptools_looks(
    package: str, package_dir: dict[str, str], folder: str
) -> None:
    assert images._package_folder(package, package_dir) == folder
