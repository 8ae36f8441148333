"""The gateway's use cases and the stateful services they share (activator, balancer)."""
