"""Kubernetes adapters: the store on custom resources, watches, leader election.

Only this package (and the controller's Kubernetes instance backend, through it) talks to
the kube-apiserver; ``kubernetes_asyncio`` is imported nowhere else.
"""
