"""The Lambda Invoke hot path: a raw ASGI app (``app.InvokeApp``) and the steps it runs."""
