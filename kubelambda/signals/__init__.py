"""Scale signals across processes: gateways and dispatchers tell the controller's leader
what they hold (``sender``), the leader hands it to its autoscaler (``receiver``), over
an authenticated JSON batch (``wire``)."""
