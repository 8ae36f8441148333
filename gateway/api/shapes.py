"""Response bodies of the management API: domain models rendered in Lambda's JSON shapes.

Called by the routers. Member names and formats follow botocore's service model
(``FunctionConfiguration``, ``AliasConfiguration``, provisioned-concurrency configs,
``FunctionEventInvokeConfig``);
members kubelambda has no notion of are given Lambda's defaults (x86_64, 512 MB of
ephemeral storage, text logs) so clients that read them find what they expect.
"""

from __future__ import annotations

from datetime import datetime

from kubelambda import names
from kubelambda.models import (
    Alias,
    EventInvokeConfig,
    FunctionVersion,
    LastUpdateStatus,
    ProvisionedConcurrency,
    State,
)

__all__ = [
    "alias_configuration",
    "dead_letter_target",
    "event_invoke_config",
    "function_configuration",
    "provisioned_config",
]

Json = dict[str, object]


def function_configuration(
    version: FunctionVersion, *, region: str, arn_qualifier: str | None = None
) -> Json:
    """``arn_qualifier``: the qualifier the caller named (or the published number), which
    Lambda appends to ``FunctionArn``; ``None`` for an unqualified ``$LATEST``."""
    name = version.function_name
    shape: Json = {
        "FunctionName": name,
        "FunctionArn": names.function_arn(name, arn_qualifier, region=region),
        "Runtime": version.runtime,
        "Role": version.role,
        "Handler": version.handler,
        "CodeSize": version.code_size,
        "Description": version.description,
        "Timeout": version.timeout,
        "MemorySize": version.memory_size,
        "LastModified": version.last_modified,
        "CodeSha256": version.code_sha256,
        "Version": version.version,
        "TracingConfig": {"Mode": "PassThrough"},
        "RevisionId": version.revision_id,
        "State": version.state.value,
        "LastUpdateStatus": version.last_update_status.value,
        "PackageType": version.package_type.value,
        "Architectures": ["x86_64"],
        "EphemeralStorage": {"Size": 512},
        "SnapStart": {"ApplyOn": "None", "OptimizationStatus": "Off"},
        "LoggingConfig": {"LogFormat": "Text", "LogGroup": f"/aws/lambda/{name}"},
    }
    if version.environment:
        shape["Environment"] = {"Variables": dict(version.environment)}
    if (dead_letters := dead_letter_target(version, region=region)) is not None:
        shape["DeadLetterConfig"] = {"TargetArn": dead_letters}
    shape.update(_state_reasons(version))
    return shape


def dead_letter_target(version: FunctionVersion, *, region: str) -> str | None:
    """The ``DeadLetterConfig.TargetArn`` a version reports: the platform's default topic
    unless the user set one, ``None`` when dead letters are turned off."""
    if version.dead_letter_target_arn is None:
        return names.topic_arn(names.default_dead_letter_topic(version.key), region=region)
    return version.dead_letter_target_arn or None


def alias_configuration(alias: Alias, *, region: str) -> Json:
    shape: Json = {
        "AliasArn": names.function_arn(alias.function_name, alias.name, region=region),
        "Name": alias.name,
        "FunctionVersion": alias.function_version,
        "Description": alias.description,
        "RevisionId": alias.revision_id,
    }
    if alias.additional_version_weights:
        shape["RoutingConfig"] = {
            "AdditionalVersionWeights": dict(alias.additional_version_weights)
        }
    return shape


def provisioned_config(config: ProvisionedConcurrency, *, region: str | None = None) -> Json:
    """Get/Put shape; with ``region``, the list item shape (which names the ARN)."""
    shape: Json = {}
    if region is not None:
        shape["FunctionArn"] = names.function_arn(
            config.function_name, config.qualifier, region=region
        )
    shape |= {
        "RequestedProvisionedConcurrentExecutions": config.requested,
        "AvailableProvisionedConcurrentExecutions": config.allocated,
        "AllocatedProvisionedConcurrentExecutions": config.allocated,
        "Status": config.status.value,
        "LastModified": config.last_modified,
    }
    if config.status_reason:
        shape["StatusReason"] = config.status_reason
    return shape


def event_invoke_config(config: EventInvokeConfig, *, region: str) -> Json:
    """Put/Update/Get and list item shape alike; ``FunctionArn`` is always qualified."""
    return {
        "FunctionArn": names.function_arn(config.function_name, config.qualifier, region=region),
        "MaximumRetryAttempts": config.maximum_retry_attempts,
        "MaximumEventAgeInSeconds": config.maximum_event_age_seconds,
        "DestinationConfig": {
            "OnSuccess": _destination(config.on_success),
            "OnFailure": _destination(config.on_failure),
        },
        "LastModified": _epoch_seconds(config.last_modified),
    }


def _destination(arn: str | None) -> Json:
    # Lambda sends an empty object for a destination that is not set.
    return {} if arn is None else {"Destination": arn}


def _epoch_seconds(last_modified: str) -> float:
    """The store's ``2019-11-14T18:16:05.568+0000`` as epoch seconds: this shape's
    ``LastModified`` is a ``timestamp`` in the model, which rest-json sends as a number."""
    return datetime.strptime(last_modified, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


def _state_reasons(version: FunctionVersion) -> Json:
    reasons: Json = {}
    if version.state is State.PENDING:
        reasons |= {"StateReason": "The function is being created.", "StateReasonCode": "Creating"}
    elif version.state is State.FAILED:
        reasons |= {
            "StateReason": version.state_reason,
            "StateReasonCode": "InvalidZipFileException",
        }
    if version.last_update_status is LastUpdateStatus.IN_PROGRESS:
        # Lambda words an update in progress like a creation, code included.
        reasons |= {
            "LastUpdateStatusReason": "The function is being created.",
            "LastUpdateStatusReasonCode": "Creating",
        }
    elif version.last_update_status is LastUpdateStatus.FAILED:
        reasons |= {
            "LastUpdateStatusReason": version.last_update_status_reason,
            "LastUpdateStatusReasonCode": "InvalidZipFileException",
        }
    return reasons
