"""The python runtimes' bootstrap; the agent runs this file as a script.

``slot`` starts it as ``<python3.X> -u python_bootstrap.py`` with cwd = LAMBDA_TASK_ROOT.
It runs under whichever interpreter the function's runtime names, which has none of our
packages installed, so it is one file of standard library only, and imports nothing of
the agent. It imports ``_HANDLER`` (``module.function``; packages as dotted paths),
reports an init failure and exits, or else loops: take the next event, call the handler
with the JSON event and a Lambda context, answer with the JSON result or the error. It
speaks the Runtime API's calls on the agent's channel (``runtime_channel``), not HTTP.

Pre-started (``PRESTARTED_VARIABLE`` set, see ``kubelambda_agent.prestarted``), it is
started before anyone knows which function it will run, with a minimal environment and
as the spare agent's user: it waits on the channel for one assignment frame (``s``: the
function's environment, its task root and, when the agent started as root, the user to
become), answers ``k`` once it has become that function's runtime, and goes on exactly
as a runtime started for the function does.
In zygote mode (``ZYGOTE_FD_VARIABLE`` set, see ``kubelambda_agent.runtime_zygote``) it
is started for its function but serves none: it forks a runtime for every request on its
control socket, and each forked runtime takes its environment and directory from the
request and goes on as a runtime started for them does.
Error bodies and messages follow Lambda's python runtime (awslambdaric), so a function
behaves the same under either.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import socket
import struct
import sys
import time

# Annotations only: importing typing would cost every cold start a few milliseconds.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any, NoReturn, TypeAlias

    Handler: TypeAlias = Callable[[Any, "LambdaContext"], Any]

# The agent's config.CHANNEL_FD_VARIABLE, and its runtime_channel frame head.
CHANNEL_FD_VARIABLE = "_KUBELAMBDA_RUNTIME_CHANNEL_FD"
# The agent's config.PRESTARTED_VARIABLE.
PRESTARTED_VARIABLE = "_KUBELAMBDA_RUNTIME_PRESTARTED"
# The agent's runtime_zygote.CONTROL_FD_VARIABLE, PROCESS_NAME, READY and PID.
ZYGOTE_FD_VARIABLE = "_KUBELAMBDA_RUNTIME_ZYGOTE_FD"
_ZYGOTE_NAME = b"runtime-zygote"
_ZYGOTE_READY = b"z"
_PID = struct.Struct(">i")
# Bounds a fork request: its environment fits the zygote's block (the agent checks), and
# JSON escaping at most multiplies it a few times.
_MAX_FORK_REQUEST = 1 << 20
_HEAD = struct.Struct(">cII")
_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
_PR_SET_NAME = 15
_SIGKILL = 9


class InitError(Exception):
    def __init__(self, error_type: str, message: str, stack: list[str] | None = None) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.stack = stack or []


class CognitoIdentity:
    __slots__ = ("cognito_identity_id", "cognito_identity_pool_id")

    def __init__(self, fields: dict[str, Any]) -> None:
        self.cognito_identity_id = fields.get("cognitoIdentityId")
        self.cognito_identity_pool_id = fields.get("cognitoIdentityPoolId")


class Client:
    __slots__ = (
        "app_package_name",
        "app_title",
        "app_version_code",
        "app_version_name",
        "installation_id",
    )

    def __init__(self, fields: dict[str, Any]) -> None:
        self.installation_id = fields.get("installation_id")
        self.app_title = fields.get("app_title")
        self.app_version_name = fields.get("app_version_name")
        self.app_version_code = fields.get("app_version_code")
        self.app_package_name = fields.get("app_package_name")


class ClientContext:
    __slots__ = ("client", "custom", "env")

    def __init__(self, fields: dict[str, Any]) -> None:
        client = fields.get("client")
        self.client = Client(client) if isinstance(client, dict) else None
        self.custom = fields.get("custom")
        self.env = fields.get("env")


class LambdaContext:
    """The ``context`` argument of a handler, with the attributes Lambda's gives."""

    # The function's own, the same for every invocation of an execution environment:
    # read once (``describe_function``), as five ``os.environ`` reads (each encodes and
    # decodes) were a sixth of this file's time per invocation.
    function_name: str | None = None
    function_version: str | None = None
    memory_limit_in_mb: str | None = None
    log_group_name: str | None = None
    log_stream_name: str | None = None

    @classmethod
    def describe_function(cls, environ: Mapping[str, str]) -> None:
        """Take the function's attributes from ``environ``, once it is the function's."""
        cls.function_name = environ.get("AWS_LAMBDA_FUNCTION_NAME")
        cls.function_version = environ.get("AWS_LAMBDA_FUNCTION_VERSION")
        cls.memory_limit_in_mb = environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        cls.log_group_name = environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        cls.log_stream_name = environ.get("AWS_LAMBDA_LOG_STREAM_NAME")

    def __init__(
        self,
        *,
        request_id: str,
        function_arn: str,
        deadline_ms: int,
        client_context: ClientContext | None,
        identity: CognitoIdentity | None,
    ) -> None:
        self.aws_request_id = request_id
        self.invoked_function_arn = function_arn
        self.client_context = client_context
        self.identity = identity
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(self._deadline_ms - int(time.time() * 1000), 0)


class RequestIdFilter(logging.Filter):
    """Stamps each record with the current request id, as Lambda's log format shows it."""

    request_id = ""

    def filter(self, record: logging.LogRecord) -> bool:
        record.aws_request_id = self.request_id
        return True


def setup_logging() -> RequestIdFilter:
    """Lambda's root handler: ``[LEVEL]\\t<UTC time>\\t<request id>\\t<message>``."""
    handler = logging.StreamHandler(sys.stdout)
    formatter = logging.Formatter(
        "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s",
        "%Y-%m-%dT%H:%M:%S",
    )
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    request_filter = RequestIdFilter()
    handler.addFilter(request_filter)
    logging.getLogger().addHandler(handler)
    return request_filter


def load_handler(spec: str) -> Handler:
    try:
        module_name, function_name = spec.rsplit(".", 1)
    except ValueError as exc:
        raise InitError("Runtime.MalformedHandlerName", f"Bad handler '{spec}': {exc}") from None
    module_name = module_name.replace("/", ".")
    if module_name.split(".")[0] in sys.builtin_module_names:
        raise InitError(
            "Runtime.BuiltInModuleConflict",
            f"Cannot use built-in module {module_name} as a handler module",
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InitError(
            "Runtime.ImportModuleError", f"Unable to import module '{module_name}': {exc}"
        ) from None
    except SyntaxError as exc:
        raise InitError(
            "Runtime.UserCodeSyntaxError",
            f"Syntax error in module '{module_name}': {exc}",
            [f'  File "{exc.filename}" Line {exc.lineno}\n    {exc.text}'],
        ) from None
    handler = getattr(module, function_name, None)
    if handler is None:
        raise InitError(
            "Runtime.HandlerNotFound",
            f"Handler '{function_name}' missing on module '{module_name}'",
        )
    return handler  # type: ignore[no-any-return]


def error_body(error_type: str, message: str, request_id: str, stack: list[str]) -> bytes:
    return json.dumps(
        {
            "errorMessage": message,
            "errorType": error_type,
            "requestId": request_id,
            "stackTrace": stack,
        }
    ).encode()


def user_stack(exc: BaseException) -> list[str]:
    """The traceback below this file's own frame, one string per frame, as Lambda lists it."""
    # Imported on the first failure only: every cold start would pay for it otherwise.
    import traceback

    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return traceback.format_list(traceback.extract_tb(tb))


def log_error(error_type: str, message: str, stack: list[str]) -> None:
    lines = [f"[ERROR] {error_type}: {message}"]
    if stack:
        lines.append("Traceback (most recent call last):")
        lines.extend(frame.rstrip("\n") for frame in stack)
    print("\n".join(lines), file=sys.stderr, flush=True)


def to_json(value: Any) -> bytes:
    return json.dumps(value, default=_json_default).encode()


def _json_default(value: Any) -> Any:
    # Lambda's python runtime serialises Decimal (boto3's DynamoDB numbers) as numbers;
    # checked by name so that decimal is not imported by every function.
    if type(value).__name__ == "Decimal":
        return int(value) if value == int(value) else float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


class RuntimeClient:
    """The agent's channel (``kubelambda_agent.runtime_channel`` says why and the frames):
    the Runtime API's calls, one message each way per invocation, on the Unix socket the
    agent handed this process at spawn. Header names come back lower-cased."""

    def __init__(self, fd: int) -> None:
        self._sock = socket.socket(fileno=fd)
        # The function's own subprocesses must not inherit it.
        self._sock.set_inheritable(False)
        self._buffer = bytearray()

    def next(self, answer: tuple[bytes, str, bytes] | None = None) -> tuple[bytes, dict[str, str]]:
        """The next event and its headers, sending ``answer`` (kind, meta, body: the
        previous invocation's result) in the same message."""
        frames = [] if answer is None else [_frame(*answer)]
        frames.append(_frame(b"n", "", b""))
        self._sock.sendall(b"".join(frames))
        kind, meta, body = self._receive()
        if kind != b"v":
            raise RuntimeError(f"the agent sent {kind!r} for an invocation")
        headers = {}
        for line in meta.split("\n"):
            name, _, value = line.partition(": ")
            if name:
                headers[name] = value
        return body, headers

    def init_error(self, error_type: str, body: bytes) -> None:
        """Report an init failure, and wait until the agent has recorded it."""
        self._sock.sendall(_frame(b"i", error_type, body))
        self._receive()

    def assignment(self) -> dict[str, Any]:
        """The assignment of a pre-started runtime; any other frame ends the process."""
        kind, _, body = self._receive()
        if kind != b"s":
            raise RuntimeError(f"the agent sent {kind!r} for an assignment")
        assignment: dict[str, Any] = json.loads(body)
        return assignment

    def assigned(self) -> None:
        self._sock.sendall(_frame(b"k", "", b""))

    def close(self) -> None:
        self._sock.close()

    def _receive(self) -> tuple[bytes, str, bytes]:
        head = self._read(_HEAD.size)
        kind, meta_length, body_length = _HEAD.unpack(head)
        meta = self._read(meta_length).decode("utf-8")
        return kind, meta, self._read(body_length)

    def _read(self, size: int) -> bytes:
        buffer = self._buffer
        while len(buffer) < size:
            chunk = self._sock.recv(max(65536, size - len(buffer)))
            if not chunk:
                raise ConnectionError("the agent closed the runtime's channel")
            buffer += chunk
        data = bytes(buffer[:size])
        del buffer[:size]
        return data


def _frame(kind: bytes, meta: str, body: bytes) -> bytes:
    encoded = meta.encode("utf-8")
    return _HEAD.pack(kind, len(encoded), len(body)) + encoded + body


class TraceIdVariable:
    """``_X_AMZN_TRACE_ID``, set to each invocation's trace id as Lambda's runtimes set it:
    in ``os.environ``, and in the C environment that ``getenv`` and the handler's
    subprocesses read.

    Not by ``os.environ[...] = ...``: that calls C's ``setenv``, and glibc keeps every
    string ``setenv`` made for as long as the process lives (a caller of ``getenv`` may
    still hold it), so a trace id of its own per invocation grew a runtime by 140 bytes
    an invocation, without bound, until its MemorySize had it killed (a runtime at 2,000
    invocations a second: 1 GB an hour). ``putenv`` puts the very string given in the
    environment; this keeps it alive until later ones have replaced it.
    """

    NAME = b"_X_AMZN_TRACE_ID"

    def __init__(self) -> None:
        import ctypes  # loaded before the first event (zygotes and pre-started: already)

        self._putenv = ctypes.CDLL(None, use_errno=True).putenv
        self._putenv.argtypes = (ctypes.c_char_p,)
        # The latest two: a thread of the handler's may still be reading the older one.
        self._entries: tuple[bytes, ...] = ()

    def set(self, trace_id: str) -> None:
        value = os.fsencode(trace_id)
        if b"\0" in value:
            return  # no C string can hold it (os.environ refuses it too)
        entry = self.NAME + b"=" + value
        self._putenv(entry)
        self._entries = (*self._entries[-1:], entry)
        # What ``os.environ[...] = ...`` does after its setenv: update its own copy.
        os.environ._data[self.NAME] = value  # type: ignore[attr-defined]


def invoke(
    handler: Handler, body: bytes, headers: dict[str, str], trace: TraceIdVariable
) -> tuple[str, bytes, str | None]:
    """Run one event: ``("response" or "error", body, error type)`` to answer with."""
    request_id = headers.get("lambda-runtime-aws-request-id", "")
    trace_id = headers.get("lambda-runtime-trace-id")
    if trace_id:
        trace.set(trace_id)
    try:
        event = json.loads(body) if body else {}
        client_context = _json_object(headers.get("lambda-runtime-client-context"))
        identity = _json_object(headers.get("lambda-runtime-cognito-identity"))
    except ValueError as exc:
        return failed("Runtime.UnmarshalError", f"Unable to unmarshal input: {exc}", request_id)
    context = LambdaContext(
        request_id=request_id,
        function_arn=headers.get("lambda-runtime-invoked-function-arn", ""),
        deadline_ms=int(headers.get("lambda-runtime-deadline-ms") or 0),
        client_context=ClientContext(client_context) if client_context is not None else None,
        identity=CognitoIdentity(identity) if identity is not None else None,
    )
    try:
        result = handler(event, context)
    except Exception as exc:
        return failed(type(exc).__name__, str(exc), request_id, user_stack(exc))
    try:
        return "response", to_json(result), None
    except (TypeError, ValueError) as exc:
        return failed("Runtime.MarshalError", f"Unable to marshal response: {exc}", request_id)


def _json_object(header: str | None) -> dict[str, Any] | None:
    if not header:
        return None
    value = json.loads(header)
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {header[:100]!r}")
    return value


def failed(
    error_type: str, message: str, request_id: str, stack: list[str] | None = None
) -> tuple[str, bytes, str]:
    log_error(error_type, message, stack or [])
    return "error", error_body(error_type, message, request_id, stack or []), error_type


def main() -> NoReturn:
    zygote_control = os.environ.pop(ZYGOTE_FD_VARIABLE, None)
    if zygote_control is not None:
        serve(fork_runtimes(socket.socket(fileno=int(zygote_control))))
    client = RuntimeClient(int(os.environ.pop(CHANNEL_FD_VARIABLE)))
    if os.environ.pop(PRESTARTED_VARIABLE, None) is not None:
        become_assigned(client)
    serve(client)


def fork_runtimes(control: socket.socket) -> RuntimeClient:
    """Zygote mode: fork a runtime for each request on ``control`` until the agent closes
    it. Returns in each forked runtime (its channel to the agent), never in the zygote.

    A request is the runtime's ``{"environ": ..., "cwd": ...}`` with two descriptors:
    its end of the channel and the write end of its output pipe. The runtime is forked
    twice, so that it becomes the agent's child (the agent is its children's subreaper)
    and the agent reaps it and reads its exit status as it does a spawned one's; the
    answer, its pid (0: not forked), goes out once the middle process is gone.
    """
    import ctypes  # loaded once, before any fork

    libc = (ctypes.CDLL(None, use_errno=True).prctl, ctypes.memmove)
    agent = os.getppid()
    # Named apart from the runtimes in ps and /proc; each fork takes the name back.
    with open("/proc/self/comm", "rb") as comm:
        name = comm.read().rstrip(b"\n")
    libc[0](_PR_SET_NAME, _ZYGOTE_NAME, 0, 0, 0)
    control.sendall(_ZYGOTE_READY)
    while True:
        message, fds, _, _ = socket.recv_fds(control, _MAX_FORK_REQUEST, 2)
        if not message:
            sys.exit(0)
        pid = 0
        if len(fds) == 2:
            pid_read, pid_write = os.pipe()
            try:
                middle = os.fork()
            except OSError:
                middle = -1
            if middle == 0:
                os.close(pid_read)
                middle = os.getpid()
                try:
                    runtime = os.fork()
                except OSError:
                    os._exit(1)
                if runtime == 0:
                    os.close(pid_write)
                    libc[0](_PR_SET_NAME, name, 0, 0, 0)
                    assignment = json.loads(message)
                    return forked_runtime(control, fds, assignment, agent, middle, libc)
                os.write(pid_write, _PID.pack(runtime))
                os._exit(0)
            os.close(pid_write)
            if middle > 0:
                reported = os.read(pid_read, _PID.size)
                os.waitpid(middle, 0)
                if len(reported) == _PID.size:
                    (pid,) = _PID.unpack(reported)
            os.close(pid_read)
        for fd in fds:
            os.close(fd)
        control.sendall(_PID.pack(pid))


def forked_runtime(
    control: socket.socket,
    fds: list[int],
    assignment: dict[str, Any],
    agent: int,
    middle: int,
    libc: tuple[Callable[..., int], Callable[[int, bytes, int], object]],
) -> RuntimeClient:
    """In a runtime the zygote forked: what the agent's spawn gives a runtime (a session
    of its own, output to its pipe, death with the agent), then its environment."""
    channel, output = fds
    prctl, memmove = libc
    control.close()
    os.setsid()
    os.dup2(output, 1)
    os.dup2(output, 2)
    os.close(output)
    # The parent-death signal follows the parent of the moment: ask for it only once the
    # middle process is gone and the agent has adopted us (for a few microseconds).
    while os.getppid() == middle:
        time.sleep(0.0001)
    prctl(_PR_SET_PDEATHSIG, _SIGKILL, 0, 0, 0)
    if os.getppid() != agent:
        os.kill(os.getpid(), _SIGKILL)  # the agent died before we could ask
    take_assignment(assignment, memmove)
    return RuntimeClient(channel)


def become_assigned(client: RuntimeClient) -> None:
    """Turn this pre-started interpreter into the runtime of the function it is assigned:
    what a runtime started for that function has at its exec, it has from here on."""
    parent = os.getppid()
    # Loaded while nobody waits (pre-starting happens on Linux only, as root or not).
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    assignment = client.assignment()
    user = assignment.get("user")
    if user is not None:
        # As the spare agent becomes its instance's user (agent_shim.become): no way back.
        os.setgroups([])
        os.setresgid(user["gid"], user["gid"], user["gid"])
        os.setresuid(user["uid"], user["uid"], user["uid"])
        # The change of user cleared the parent-death signal and made this process
        # non-dumpable. Its exec would have made a runtime started as the user dumpable;
        # nothing of root's is in this memory (it was started minimal, for no function).
        prctl(_PR_SET_DUMPABLE, 1, 0, 0, 0)
        prctl(_PR_SET_PDEATHSIG, _SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os.kill(os.getpid(), _SIGKILL)  # the agent died before we could ask
    take_assignment(assignment, ctypes.memmove)
    client.assigned()


def take_assignment(
    assignment: Mapping[str, Any], memmove: Callable[[int, bytes, int], object]
) -> None:
    """Become the runtime of ``assignment``'s directory and environment."""
    # Python's start set it (PEP 538 locale coercion) under the same LANG and LC_ALL as
    # the function's: the agent checked them. A runtime started for it has it too.
    coerced = os.environ.get("LC_CTYPE")
    os.chdir(assignment["cwd"])
    environ = assignment["environ"]
    # Wholesale, through putenv/unsetenv: C's getenv and child processes see it too.
    os.environ.clear()
    show_environ(environ, memmove)
    os.environ.update(environ)
    if coerced is not None:
        os.environ.setdefault("LC_CTYPE", coerced)
    time.tzset()  # TZ came with the assignment


def show_environ(environ: Mapping[str, str], memmove: Callable[[int, bytes, int], object]) -> None:
    """Write ``environ`` over the strings this process was started with, so that
    ``/proc/<pid>/environ`` (which the platform finds an instance's processes by) shows
    what a runtime started for the function would show. The strings are this process's
    own memory, nothing refers to them once ``os.environ`` was replaced, and the agent
    started it with room enough (``prestarted``) for what it then sends."""
    with open("/proc/self/stat", "rb") as stat:
        fields = stat.read().rsplit(b")", 1)[1].split()
    start, end = int(fields[47]), int(fields[48])  # env_start, env_end: proc(5) 50, 51
    shown = b"".join(os.fsencode(f"{name}={value}") + b"\0" for name, value in environ.items())
    if len(shown) <= end - start:
        memmove(start, shown.ljust(end - start, b"\0"), end - start)


def serve(client: RuntimeClient) -> NoReturn:
    """Import the handler, then run events until the agent goes."""
    task_root = os.environ.get("LAMBDA_TASK_ROOT") or os.getcwd()
    # Run as a script, python put this file's folder first on sys.path (unless
    # PYTHONSAFEPATH said not to); user code imports from the task root instead, and
    # must never see the agent's modules.
    if sys.path and sys.path[0] == os.path.dirname(os.path.abspath(__file__)):
        sys.path[0] = task_root
    else:
        sys.path.insert(0, task_root)
    request_filter = setup_logging()
    LambdaContext.describe_function(os.environ)
    try:
        handler = load_handler(os.environ.get("_HANDLER", ""))
    except InitError as exc:
        init_failed(client, exc.error_type, exc.message, exc.stack)
    except Exception as exc:
        init_failed(client, type(exc).__name__, str(exc), user_stack(exc))
    trace = TraceIdVariable()
    answer = None
    while True:
        body, headers = client.next(answer)
        request_filter.request_id = headers.get("lambda-runtime-aws-request-id", "")
        outcome, payload, error_type = invoke(handler, body, headers, trace)
        request_id = request_filter.request_id
        # A response too large is the agent's to report: carry on with the next event.
        if outcome == "response":
            answer = (b"r", request_id, payload)
        else:
            answer = (b"e", f"{request_id}\n{error_type or ''}", payload)


def init_failed(client: RuntimeClient, error_type: str, message: str, stack: list[str]) -> NoReturn:
    log_error(error_type, message, stack)
    client.init_error(error_type, error_body(error_type, message, "", stack))
    client.close()
    sys.exit(1)


if __name__ == "__main__":
    main()
