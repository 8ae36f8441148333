"""An instance log stays bounded however much a function prints (issue 10, item 16)."""

from __future__ import annotations

from pathlib import Path

from agent_harness import StartAgent

MAX_BYTES = 64 * 1024

CHATTY_FUNCTION = {
    "app.py": """
        def handler(event, context):
            for i in range(event["lines"]):
                print(f"line {i:08d} " + "x" * 1000)
            print("last words")
            return "done"
    """
}


def test_a_flood_of_output_leaves_at_most_two_files_of_the_bound(
    start_agent: StartAgent, tmp_path: Path
) -> None:
    log = tmp_path / "instance.log"
    agent = start_agent(
        CHATTY_FUNCTION,
        env={
            "KUBELAMBDA_AGENT_LOG_FILE": str(log),
            "KUBELAMBDA_AGENT_LOG_MAX_BYTES": str(MAX_BYTES),
        },
    )
    for _ in range(3):
        # 10 MiB per invocation, as in the report.
        result = agent.invoke({"lines": 10 * 1024})
        assert result.status == 200
        assert result.json == "done"

    previous = log.with_name(log.name + ".1")
    assert log.stat().st_size <= MAX_BYTES
    assert previous.stat().st_size <= MAX_BYTES
    assert sorted(p.name for p in tmp_path.glob("instance.log*")) == [
        "instance.log",
        "instance.log.1",
    ]
    # The newest lines are kept: the last invocation's end is in the current file, its
    # last output there too unless the rotation fell between them.
    current = log.read_text()
    newest = (previous.read_text() + current).splitlines()
    assert newest[-3] == "last words"
    assert newest[-2].startswith("END RequestId:")
    assert "REPORT RequestId:" in current
