"""``kubelambda dlq list|redrive FUNCTION``: a function's dead letters, from the shell.

Called by ``cli``. Opens the store (to find the function and its dead-letter topic) and
the same event queue the platform uses (SQLite file or Kafka), so it works while the
platform runs; ``kubelambda.dead_letter_queue`` does the work over the ports.
"""

from __future__ import annotations

import json
import sys
import time

from kubelambda import dead_letter_queue, errors, names
from kubelambda.destinations import DeadLetter
from kubelambda.launch import queues
from kubelambda.launch.settings import PlatformSettings
from kubelambda.models import LATEST, FunctionKey
from kubelambda.store.sqlite import SqliteStore

__all__ = ["run"]


async def run(
    settings: PlatformSettings, *, action: str, function: FunctionKey, as_json: bool
) -> int:
    async with SqliteStore.open(settings.home, region=settings.region) as store:
        try:
            latest = await store.get_version(function, LATEST)
        except errors.ResourceNotFound as exc:
            print(f"kubelambda: {exc.message}", file=sys.stderr)
            return 1
    topic = names.dead_letter_topic(function, latest.dead_letter_target_arn)
    if topic is None:
        print(f"kubelambda: dead letters are turned off for {function}", file=sys.stderr)
        return 1
    async with queues.open_queue(settings) as opened:
        if action == "redrive":
            sent = await dead_letter_queue.redrive(opened.queue, opened.topics, topic, function)
            _show(sent, as_json=as_json, topic=topic, verb="redriven")
        else:
            letters = await dead_letter_queue.letters(opened.topics, topic)
            _show(letters, as_json=as_json, topic=topic)
    return 0


def _show(letters: list[DeadLetter], *, as_json: bool, topic: str, verb: str = "") -> None:
    now = time.time()
    if as_json:
        rows = [
            {
                "requestId": letter.request_id,
                "condition": letter.condition,
                "errorCode": letter.error_code,
                "errorMessage": letter.error_message,
                "attempts": letter.attempts,
                "ageSeconds": round(now - letter.accepted_at, 3),
                "functionArn": letter.function_arn,
                "payload": letter.payload.decode(errors="replace"),
            }
            for letter in letters
        ]
        print(json.dumps(rows, indent=2))
        return
    if verb:
        print(f"{len(letters)} dead letter(s) {verb} from {topic}")
        return
    print(f"{len(letters)} dead letter(s) in {topic}")
    for letter in letters:
        print(
            f"{letter.request_id}  {letter.condition}  attempts={letter.attempts}  "
            f"age={now - letter.accepted_at:.0f}s  {letter.error_code}: {letter.error_message}"
        )
