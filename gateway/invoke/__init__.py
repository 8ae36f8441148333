"""The Lambda Invoke hot path: a raw ASGI app (``app.InvokeApp``) and the steps it runs.

One request, top to bottom (each step a small module; none calls the store or an API):

    app.InvokeApp              parse path, ?Qualifier and X-Amz-* headers; write the reply
    └── invoker.Invoker        the use case
        ├── domain.routing       FunctionRef → version (alias weights), 404 / 409
        ├── domain.invocation    payload must be JSON; DryRun stops here (204)
        ├── limits               reserved concurrency, function-wide (429)
        ├── services.activator   a slot now, or a bounded wait + poke (429 past the bounds)
        │   └── services.balancer  least in flight among endpoints with spare capacity
        ├── proxy                POST /invoke to the agent over kits.http_pool
        └── domain.responses     agent headers → X-Amz-* headers; bounded error labels

The catalog comes from the store's watch (``InvokeApp.on_catalog``), endpoints from
``InstanceBackend.endpoints``/``subscribe``; the autoscaler only hears ``ScaleSignals``.
"""
