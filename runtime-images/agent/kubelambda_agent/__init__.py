"""kubelambda's runtime agent: runs a function's runtimes and serves them the Lambda Runtime API.

It runs inside every function instance (``python -m kubelambda_agent``; see ``__main__``)
and is started by the local instance backend in embedded mode or as a container's
entrypoint in Kubernetes. It ships alone in runtime images: standard library and
``httptools`` only, and nothing else of kubelambda's.

Map: ``__main__`` (start-up) → ``agent`` (lifecycle, readiness, drain) → ``invoke_endpoint``
(the gateway's ``POST /invoke``) → ``slot`` (one runtime process: state, timeouts, logs)
→ ``runtime_api`` (the Runtime API routes) over ``http_server``; ``python_bootstrap`` is
the script the python runtimes run. ``protocol`` is the gateway↔agent wire (paths,
headers, the event size limit): the gateway imports it, so both sides share one copy.
``fetch_code`` runs first in a pod: it fetches the function's zip into the task root.
"""
