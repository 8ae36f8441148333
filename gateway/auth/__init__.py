"""Who is calling: AWS SigV4 and bearer API keys, checked before any route runs.

``gateway.app`` builds a ``RawRequest`` from the ASGI scope and the body it read, and
calls ``Authenticator.authenticate``; a failure is a ``kubelambda.errors.AccessDenied``
(403) in Lambda's shape.
"""

from gateway.auth.authenticator import Authenticator
from gateway.auth.request import RawRequest

__all__ = ["Authenticator", "RawRequest"]
