"""CreateFunction, GetFunction(Configuration), ListFunctions, Update*, DeleteFunction via boto3."""

from __future__ import annotations

import base64
import hashlib
import io
import stat
import time
import zipfile
from pathlib import Path

import botocore.exceptions
import httpx
import pytest
from mgmt_gateway import ROLE, create, key, make_zip, running_gateway, slow_zip

from kubelambda import instance_tokens, runtimes


def error_of(excinfo: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> tuple[int, str]:
    response = excinfo.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def test_create_answers_201_pending_and_becomes_active(gateway):
    client = gateway.client()
    created = create(client, wait=False)
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert (created["State"], created["LastUpdateStatus"]) == ("Pending", "InProgress")
    client.get_waiter("function_active_v2").wait(
        FunctionName="f", WaiterConfig={"Delay": 0.05, "MaxAttempts": 100}
    )
    configuration = client.get_function_configuration(FunctionName="f")
    assert (configuration["State"], configuration["LastUpdateStatus"]) == ("Active", "Successful")


def test_create_reports_the_configuration_in_lambda_shape(gateway):
    package = make_zip()
    created = create(
        gateway.client(),
        Code={"ZipFile": package},
        MemorySize=256,
        Timeout=30,
        Description="demo",
        Environment={"Variables": {"GREETING": "hi"}},
    )
    assert created["FunctionArn"] == "arn:aws:lambda:us-east-1:000000000000:function:f"
    assert created["CodeSha256"] == base64.b64encode(hashlib.sha256(package).digest()).decode()
    assert created["CodeSize"] == len(package)
    assert (created["MemorySize"], created["Timeout"]) == (256, 30)
    assert created["Environment"] == {"Variables": {"GREETING": "hi"}}
    assert created["Role"] == ROLE
    assert created["Version"] == "$LATEST"
    assert created["LoggingConfig"] == {"LogFormat": "Text", "LogGroup": "/aws/lambda/f"}
    assert created["Architectures"] == ["x86_64"]
    assert created["EphemeralStorage"] == {"Size": 512}
    assert created["PackageType"] == "Zip"


def test_last_modified_has_lambdas_format(gateway):
    created = create(gateway.client())
    assert created["LastModified"][-9:-5].startswith(".")  # milliseconds
    assert created["LastModified"].endswith("+0000")


def test_unpacked_package_keeps_bootstrap_executable(gateway):
    client = gateway.client()
    package = make_zip({"bootstrap": "#!/bin/sh\n", "lib/x.txt": "x"}, executable=("bootstrap",))
    create(client, Runtime="provided.al2023", Handler="none", Code={"ZipFile": package})
    version = gateway.run(lambda: gateway.store.get_version(key("f"), "$LATEST"))
    # Where the local backend unpacked it for its instances (LAMBDA_TASK_ROOT).
    task_root = gateway.home / "code" / "unpacked" / version.running_package.sha256_hex
    assert (task_root / "bootstrap").stat().st_mode & 0o111
    assert (task_root / "lib" / "x.txt").read_text() == "x"


def test_create_twice_is_a_conflict(gateway):
    client = gateway.client()
    create(client)
    with pytest.raises(client.exceptions.ResourceConflictException) as excinfo:
        create(client, wait=False)
    assert error_of(excinfo) == (409, "ResourceConflictException")


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"MemorySize": 10241}, "less than or equal to 10240"),
        ({"Timeout": 901}, "less than or equal to 900"),
        ({"Runtime": "python2.7"}, "runtime parameter of python2.7"),
        ({"Runtime": "provided.al2023"}, "bootstrap"),
        ({"Role": "not-a-role"}, "role"),
        ({"Environment": {"Variables": {"AWS_REGION": "x"}}}, "reserved keys"),
        ({"Code": {"ZipFile": b"not a zip"}}, "Could not unzip"),
        ({"Tags": {"kubelambda.io/idle-timeout-seconds": "-1"}}, "positive number"),
        ({"Tags": {"kubelambda.io/instance-concurrency": "1001"}}, "from 1 to 1000"),
        ({"Tags": {"kubelambda.io/instance-concurrency": "0"}}, "from 1 to 1000"),
        ({"FunctionName": "bad name"}, "functionName"),
        ({"PackageType": "Image", "Code": {"ImageUri": "x"}}, "Image"),
    ],
)
def test_create_rejects_invalid_parameters(gateway, overrides, fragment):
    client = gateway.client()
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        create(client, wait=False, **overrides)
    assert error_of(excinfo) == (400, "InvalidParameterValueException")
    assert fragment in excinfo.value.response["Error"]["Message"]


def test_create_refuses_a_zip_escaping_its_directory(gateway):
    client = gateway.client()
    package = make_zip({"../evil.py": "x = 1\n"})
    with pytest.raises(client.exceptions.InvalidParameterValueException):
        create(client, wait=False, Code={"ZipFile": package})


def chained_links_zip() -> bytes:
    """``a/b -> ..``, ``a/b/c -> ..``, ... and a file under the deepest link: followed
    while unpacking, the file lands four directories above the package."""
    link = (stat.S_IFLNK | 0o777) << 16
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    return 1\n")
        name = "a"
        for _ in range(5):
            name += "/b"
            info = zipfile.ZipInfo(name)
            info.external_attr = link
            archive.writestr(info, "..")
        archive.writestr(f"{name}/escaped.txt", "pwned")
    return buffer.getvalue()


def test_create_refuses_a_zip_escaping_through_chained_links(gateway):
    client = gateway.client()
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        create(client, wait=False, Code={"ZipFile": chained_links_zip()})
    assert error_of(excinfo) == (400, "InvalidParameterValueException")
    assert "link" in excinfo.value.response["Error"]["Message"]
    assert not list(gateway.home.parent.rglob("escaped.txt"))


def test_unknown_function_is_not_found_with_its_arn(gateway):
    client = gateway.client()
    with pytest.raises(client.exceptions.ResourceNotFoundException) as excinfo:
        client.get_function(FunctionName="missing")
    assert error_of(excinfo) == (404, "ResourceNotFoundException")
    assert excinfo.value.response["Error"]["Message"] == (
        "Function not found: arn:aws:lambda:us-east-1:000000000000:function:missing"
    )


def test_get_function_accepts_a_full_arn(gateway):
    client = gateway.client()
    create(client)
    arn = "arn:aws:lambda:us-east-1:000000000000:function:f"
    assert client.get_function(FunctionName=arn)["Configuration"]["FunctionName"] == "f"


def test_get_function_code_location_downloads_the_zip_without_credentials(gateway):
    client = gateway.client()
    package = make_zip({"app.py": "def handler(e, c):\n    return 42\n"})
    create(client, Code={"ZipFile": package})
    code = client.get_function(FunctionName="f")["Code"]
    assert code["RepositoryType"] == "S3"
    downloaded = httpx.get(code["Location"])
    assert downloaded.status_code == 200
    assert downloaded.content == package


def test_code_location_with_a_forged_signature_is_refused(gateway):
    client = gateway.client()
    create(client)
    location = client.get_function(FunctionName="f")["Code"]["Location"]
    forged = location[:-4] + ("0000" if not location.endswith("0000") else "1111")
    assert httpx.get(forged).status_code == 403


def test_an_instance_fetches_its_package_with_its_code_token_only(tmp_path):
    key = bytes(range(32))
    with running_gateway(tmp_path, instance_key=key) as served:
        client = served.client()
        package = make_zip({"app.py": "def handler(e, c):\n    return 7\n"})
        create(client, Code={"ZipFile": package})
        other = make_zip({"app.py": "def handler(e, c):\n    return 8\n"})
        create(client, "g", Code={"ZipFile": other})
        digest = hashlib.sha256(package).hexdigest()
        url = f"{served.url}/kubelambda/code/{digest}.zip"

        def fetch(token: str) -> httpx.Response:
            return httpx.get(url, headers={"Authorization": f"Bearer {token}"})

        fetched = fetch(instance_tokens.code_token(key, digest))
        assert fetched.status_code == 200
        assert fetched.content == package
        # Another package's token, a token from another key, and none are all refused.
        other_digest = hashlib.sha256(other).hexdigest()
        assert fetch(instance_tokens.code_token(key, other_digest)).status_code == 403
        assert fetch(instance_tokens.code_token(bytes(32), digest)).status_code == 403
        assert httpx.get(url).status_code == 403


def test_code_tokens_are_refused_where_no_instance_fetches_code(gateway):
    client = gateway.client()
    package = make_zip()
    create(client, Code={"ZipFile": package})
    digest = hashlib.sha256(package).hexdigest()
    token = instance_tokens.code_token(bytes(32), digest)
    response = httpx.get(
        f"{gateway.url}/kubelambda/code/{digest}.zip", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 403


def test_get_function_reports_tags_and_reserved_concurrency(gateway):
    client = gateway.client()
    create(client, Tags={"team": "a"})
    client.put_function_concurrency(FunctionName="f", ReservedConcurrentExecutions=5)
    got = client.get_function(FunctionName="f")
    assert got["Tags"] == {"team": "a"}
    assert got["Concurrency"] == {"ReservedConcurrentExecutions": 5}


def test_list_functions_pages_with_markers(gateway):
    client = gateway.client()
    for name in ("a", "b", "c", "d", "e"):
        create(client, name, wait=False)
    first = client.list_functions(MaxItems=2)
    second = client.list_functions(MaxItems=2, Marker=first["NextMarker"])
    third = client.list_functions(MaxItems=2, Marker=second["NextMarker"])
    pages = [first, second, third]
    assert [[f["FunctionName"] for f in page["Functions"]] for page in pages] == [
        ["a", "b"],
        ["c", "d"],
        ["e"],
    ]
    assert "NextMarker" not in third


def test_list_functions_paginator_walks_every_page(gateway):
    client = gateway.client()
    for name in ("a", "b", "c"):
        create(client, name, wait=False)
    paginator = client.get_paginator("list_functions")
    names = [
        function["FunctionName"]
        for page in paginator.paginate(PaginationConfig={"PageSize": 1})
        for function in page["Functions"]
    ]
    assert names == ["a", "b", "c"]


def test_list_functions_rejects_a_garbled_marker(gateway):
    client = gateway.client()
    with pytest.raises(client.exceptions.InvalidParameterValueException):
        client.list_functions(Marker="not-a-marker")


def test_update_code_is_in_progress_then_successful(gateway):
    client = gateway.client()
    create(client)
    package = make_zip({"app.py": "def handler(e, c):\n    return 2\n"})
    updated = client.update_function_code(FunctionName="f", ZipFile=package)
    assert updated["LastUpdateStatus"] == "InProgress"
    client.get_waiter("function_updated_v2").wait(
        FunctionName="f", WaiterConfig={"Delay": 0.05, "MaxAttempts": 100}
    )
    configuration = client.get_function_configuration(FunctionName="f")
    assert configuration["LastUpdateStatus"] == "Successful"
    assert configuration["CodeSha256"] == updated["CodeSha256"]


def test_update_code_keeps_serving_the_old_package_until_unpacked(gateway):
    client = gateway.client()
    old = create(client)["CodeSha256"]
    new = client.update_function_code(FunctionName="f", ZipFile=slow_zip())["CodeSha256"]

    def running() -> str:
        (version,) = gateway.run(gateway.store.catalog).versions.values()
        return version.running_package.code_sha256

    assert running() == old
    client.get_waiter("function_updated_v2").wait(
        FunctionName="f", WaiterConfig={"Delay": 0.1, "MaxAttempts": 600}
    )
    assert running() == new


def test_update_configuration_changes_only_what_was_given(gateway):
    client = gateway.client()
    create(client, Environment={"Variables": {"COLOR": "red"}})
    updated = client.update_function_configuration(FunctionName="f", MemorySize=512)
    assert (updated["MemorySize"], updated["Environment"]) == (512, {"Variables": {"COLOR": "red"}})
    assert updated["Handler"] == "app.handler"


def test_every_change_gets_a_new_revision_id(gateway):
    client = gateway.client()
    created = create(client)
    updated = client.update_function_configuration(FunctionName="f", Timeout=10)
    assert updated["RevisionId"] != created["RevisionId"]


def test_update_with_a_stale_revision_id_fails_the_precondition(gateway):
    client = gateway.client()
    created = create(client)
    client.update_function_configuration(FunctionName="f", Timeout=10)
    with pytest.raises(client.exceptions.PreconditionFailedException) as excinfo:
        client.update_function_configuration(
            FunctionName="f", Timeout=20, RevisionId=created["RevisionId"]
        )
    assert error_of(excinfo) == (412, "PreconditionFailedException")


def test_update_with_the_current_revision_id_succeeds(gateway):
    client = gateway.client()
    created = create(client)
    updated = client.update_function_configuration(
        FunctionName="f", Timeout=20, RevisionId=created["RevisionId"]
    )
    assert updated["Timeout"] == 20


def test_update_while_an_update_is_in_progress_is_a_conflict(gateway):
    client = gateway.client()
    create(client)
    client.update_function_code(FunctionName="f", ZipFile=slow_zip())
    with pytest.raises(client.exceptions.ResourceConflictException) as excinfo:
        client.update_function_configuration(FunctionName="f", Timeout=10)
    assert "in progress" in excinfo.value.response["Error"]["Message"]


def test_update_of_a_pending_function_is_a_conflict(gateway):
    client = gateway.client()
    create(client, wait=False, Code={"ZipFile": slow_zip()})
    with pytest.raises(client.exceptions.ResourceConflictException) as excinfo:
        client.update_function_configuration(FunctionName="f", Timeout=10)
    assert "Pending" in excinfo.value.response["Error"]["Message"]


def test_delete_function_answers_204_and_forgets_it(gateway):
    client = gateway.client()
    create(client)
    deleted = client.delete_function(FunctionName="f")
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_function(FunctionName="f")


def test_delete_unknown_function_is_not_found(gateway):
    client = gateway.client()
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.delete_function(FunctionName="missing")


def damaged_zip() -> bytes:
    """A zip whose directory reads fine but whose content does not unpack."""
    data = bytearray(make_zip({"app.py": "".join(f"line {i}\n" for i in range(2000))}))
    for offset in range(50, 200):
        data[offset] ^= 0x5A
    return bytes(data)


def test_a_package_that_cannot_be_unpacked_leaves_the_function_failed(gateway):
    client = gateway.client()
    create(client, wait=False, Code={"ZipFile": damaged_zip()})
    with pytest.raises(botocore.exceptions.WaiterError):
        client.get_waiter("function_active_v2").wait(
            FunctionName="f", WaiterConfig={"Delay": 0.05, "MaxAttempts": 100}
        )
    configuration = client.get_function_configuration(FunctionName="f")
    assert (configuration["State"], configuration["StateReasonCode"]) == (
        "Failed",
        "InvalidZipFileException",
    )
    assert "unpack" in configuration["StateReason"]


def wait_for_collection(zips: Path, *, left: int) -> None:
    """The controller collects just after the change that freed a package: give it a moment."""
    deadline = time.monotonic() + 5
    while len(list(zips.iterdir())) > left and time.monotonic() < deadline:
        time.sleep(0.02)


def test_deleting_a_function_collects_its_package_once_past_the_grace(tmp_path):
    with running_gateway(tmp_path, package_grace_seconds=0) as gateway:
        client = gateway.client()
        create(client, "keep")
        create(client, "drop", Code={"ZipFile": make_zip({"app.py": "x = 'drop'\n"})})
        zips = tmp_path / "code" / "zips"
        assert len(list(zips.iterdir())) == 2
        client.delete_function(FunctionName="drop")
        wait_for_collection(zips, left=1)
        (left,) = zips.iterdir()
        kept = client.get_function(FunctionName="keep")["Configuration"]["CodeSha256"]
        assert base64.b64encode(bytes.fromhex(left.stem)).decode() == kept


def test_a_code_update_collects_the_package_it_replaced(tmp_path):
    with running_gateway(tmp_path, package_grace_seconds=0) as gateway:
        client = gateway.client()
        create(client)
        package = make_zip({"app.py": "x = 'new'\n"})
        updated = client.update_function_code(FunctionName="f", ZipFile=package)
        client.get_waiter("function_updated_v2").wait(
            FunctionName="f", WaiterConfig={"Delay": 0.05, "MaxAttempts": 100}
        )
        zips = tmp_path / "code" / "zips"
        wait_for_collection(zips, left=1)
        (left,) = zips.iterdir()
        assert base64.b64encode(bytes.fromhex(left.stem)).decode() == updated["CodeSha256"]


def test_collection_keeps_the_package_still_served_during_an_update(tmp_path):
    with running_gateway(tmp_path, package_grace_seconds=0) as gateway:
        client = gateway.client()
        served = create(client)["CodeSha256"]
        other = create(client, "other", Code={"ZipFile": make_zip({"app.py": "x = 'o'\n"})})
        client.update_function_code(FunctionName="f", ZipFile=slow_zip())
        client.delete_function(FunctionName="other")
        # Settling this one collects (past the grace of 0) while f is still InProgress.
        create(client, "third", Code={"ZipFile": make_zip({"app.py": "x = 't'\n"})})
        zips = tmp_path / "code" / "zips"
        wait_for_collection(zips, left=3)
        left = {base64.b64encode(bytes.fromhex(path.stem)).decode() for path in zips.iterdir()}
        assert other["CodeSha256"] not in left
        assert served in left
        assert client.get_function(FunctionName="f")["Configuration"]["LastUpdateStatus"] == (
            "InProgress"
        )


def test_python_3_12_is_accepted_exactly_when_this_host_has_the_interpreter(tmp_path):
    with running_gateway(tmp_path, runtimes=runtimes.available_runtimes()) as gateway:
        client = gateway.client()
        if runtimes.find_python("python3.12") is None:
            with pytest.raises(client.exceptions.InvalidParameterValueException):
                create(client, Runtime="python3.12", wait=False)
        else:
            assert create(client, Runtime="python3.12")["Runtime"] == "python3.12"
