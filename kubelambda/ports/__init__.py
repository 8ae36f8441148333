"""The seams between kubelambda's logic and the world it runs on (ports, in ports-and-adapters).

Each port is shaped by the caller that uses it, and has an embedded adapter (SQLite,
local disk, local processes) and, as the Kubernetes and Kafka issues land, a cluster one:

    catalog.CatalogSource     data path + controller   read: snapshots fed by a watch
    management.ManagementStore  management API         writes (and reads) of functions
    control.ControllerStore   controller               status reports: packages, provisioned
    code.CodeStore            management + backends    zip packages by SHA-256
    endpoints.EndpointSource  gateway                  ready endpoints of a version
    instances.InstanceBackend controller               scale a version; start failures
    signals.ScaleSignals      gateway -> controller    in-flight counts per reporter, pokes
    queue.Queue               async producer/dispatcher  durable events, commit, dead letters

Nothing here imports an adapter or a component; the launch package picks the adapters.
"""
