"""The Lambda Invoke HTTP edge (``app.InvokeApp``, called as ASGI or straight through
``handle``) over the use case.

One request, top to bottom (each step a small module; none calls the store or an API):

    app.InvokeApp.handle             parse ?Qualifier and X-Amz-* headers; render the reply
    ├── domain.invocation              headers, client context, JSON payload (400s)
    └── services.metered_invoker       resolve once; count the outcome
        └── services.invoker           the transport-free use case
            ├── domain.routing           FunctionRef → version (alias weights), 404 / 409
            ├── domain.limits            reserved concurrency, function-wide (429)
            ├── services.activator       a slot now, or a bounded wait + poke (429 past it)
            │   └── services.balancer      least in flight among endpoints with room
            └── kits.agent_client        POST /invoke to the agent over kits.http_pool

The catalog comes from the store's watch (``Invoker.on_catalog``), endpoints from an
``EndpointSource``; the autoscaler only hears ``ScaleSignals``.
"""
