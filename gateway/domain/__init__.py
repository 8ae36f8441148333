"""Pure logic of the gateway: no I/O, no clock, no third-party clients.

The invoke path (``gateway.invoke``) and the services call into it; it imports only
``kubelambda``'s shared models, names and errors.
"""
