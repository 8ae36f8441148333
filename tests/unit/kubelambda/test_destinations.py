"""Destination records and dead letters in Lambda's formats, and reading them back."""

import json

from kubelambda import destinations
from kubelambda.ports.queue import TopicRecord

ARN = "arn:aws:lambda:us-east-1:000000000000:function:f:$LATEST"


def test_a_failure_record_is_lambdas_destination_format() -> None:
    record = json.loads(
        destinations.destination_record(
            request_id="r-1",
            function_arn=ARN,
            condition="RetriesExhausted",
            invoke_count=3,
            request_payload=b'{"n": 1}',
            outcome=destinations.Outcome(
                200, "$LATEST", "Unhandled", b'{"errorMessage": "boom", "errorType": "E"}'
            ),
            at=1_700_000_000.25,
        )
    )

    assert record == {
        "version": "1.0",
        "timestamp": "2023-11-14T22:13:20.250Z",
        "requestContext": {
            "requestId": "r-1",
            "functionArn": ARN,
            "condition": "RetriesExhausted",
            "approximateInvokeCount": 3,
        },
        "requestPayload": {"n": 1},
        "responseContext": {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": "Unhandled",
        },
        "responsePayload": {"errorMessage": "boom", "errorType": "E"},
    }


def test_an_event_that_never_ran_has_no_response_context() -> None:
    record = json.loads(
        destinations.destination_record(
            request_id="r-2",
            function_arn=ARN,
            condition="EventAgeExceeded",
            invoke_count=0,
            request_payload=b"not json",
            outcome=destinations.Outcome(),
            at=0.0,
        )
    )

    assert "responseContext" not in record and "responsePayload" not in record
    assert record["requestPayload"] == "not json"


def test_a_success_record_has_no_function_error() -> None:
    record = json.loads(
        destinations.destination_record(
            request_id="r-3",
            function_arn=ARN,
            condition="Success",
            invoke_count=1,
            request_payload=b"{}",
            outcome=destinations.Outcome(200, "2", None, b'"ok"'),
            at=0.0,
        )
    )

    assert record["responseContext"] == {"statusCode": 200, "executedVersion": "2"}
    assert record["responsePayload"] == "ok"


def test_a_dead_letter_reads_back_with_its_attributes() -> None:
    message = destinations.dead_letter(
        request_id="r-4",
        function_arn=ARN,
        condition="RetriesExhausted",
        attempts=3,
        accepted_at=12.5,
        payload=b'{"n": 4}',
        error_code="200",
        error_message="x" * 5000,
    )
    letter = destinations.DeadLetter.from_record(
        TopicRecord(topic="kubelambda-dlq.f", position="0:7", message=message, timestamp=99.0)
    )

    assert message.headers["RequestID"] == "r-4" and message.key == "r-4"
    assert (letter.request_id, letter.condition, letter.attempts) == ("r-4", "RetriesExhausted", 3)
    assert letter.accepted_at == 12.5
    assert letter.payload == b'{"n": 4}'
    assert len(letter.error_message) == 1024
