"""Response bodies of the management API: domain models rendered in Lambda's JSON shapes.

Called by the routers. Member names and formats follow botocore's service model
(``FunctionConfiguration``, ``AliasConfiguration``, provisioned-concurrency configs);
members kubelambda has no notion of are given Lambda's defaults (x86_64, 512 MB of
ephemeral storage, text logs) so clients that read them find what they expect.
"""

from __future__ import annotations

from kubelambda import names
from kubelambda.models import (
    Alias,
    FunctionVersion,
    LastUpdateStatus,
    ProvisionedConcurrency,
    State,
)

__all__ = ["alias_configuration", "function_configuration", "provisioned_config"]

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
    shape.update(_state_reasons(version))
    return shape


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
