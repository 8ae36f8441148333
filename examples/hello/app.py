"""The example function `make run` deploys: a plain Lambda handler, no dependencies."""

import os


def handler(event, context):
    name = event.get("name", "world") if isinstance(event, dict) else "world"
    print(f"greeting {name}")
    return {
        "message": f"Hello, {name}!",
        "requestId": context.aws_request_id,
        "functionVersion": context.function_version,
        "remainingTimeMs": context.get_remaining_time_in_millis(),
        "region": os.environ.get("AWS_REGION"),
    }
