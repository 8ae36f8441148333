"""Composition roots: one entry point per process, the only code that imports components.

    cli          ``kubelambda up|gateway|controller|dispatcher|env|dlq``
    embedded     gateway + controller + local instances in one process (``kubelambda up``)
    kubernetes   gateway + leader-elected controller, pods as instances (``up --kubernetes``)
    cluster      the three in-cluster roles the Helm chart runs, one process each
    cluster_adapters  the Kubernetes adapters both of those open the same way
    front        the request side every gateway shares (invoke path, dispatcher, app)
    gateway      wires a gateway (invoke path + management API) from ports it is handed
    controller   wires the controller's reconcilers (package settler, autoscaler)
    settings     the one typed settings object a process reads at start
    example      the example function ``kubelambda up --example`` deploys

Each entry point reads one settings object, picks the adapters for its mode, and passes
them into the components by injection; no component builds its own collaborators.
"""
