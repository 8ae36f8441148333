"""The runtime image's tag: a digest of exactly what the image is built from."""

from __future__ import annotations

import re
from pathlib import Path

from kubelambda_testbed import images, k8s_layout

AGENT = Path(__file__).resolve().parents[3] / "runtime-images" / "agent" / "kubelambda_agent"


def layout(tmp_path: Path) -> k8s_layout.Layout:
    return k8s_layout.Layout(state_dir=tmp_path / "state", cache_dir=tmp_path / "cache")


def test_tag_is_12_hex_of_the_content_and_stable(tmp_path: Path) -> None:
    first = images.runtime_image_ref(layout(tmp_path))

    assert re.fullmatch(r"localhost/kubelambda/runtime:[0-9a-f]{12}", first)
    assert images.runtime_image_ref(layout(tmp_path)) == first


def test_build_context_is_every_agent_module_and_the_recipe() -> None:
    sources = images._runtime_sources()

    modules = {f"agent/kubelambda_agent/{p.name}" for p in AGENT.glob("*.py")}
    assert set(sources) == modules | {"python/Containerfile", "python/requirements.txt"}
    assert "agent/kubelambda_agent/fetch_code.py" in sources
