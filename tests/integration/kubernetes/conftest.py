"""Fixtures for the Kubernetes adapters against the real test apiserver."""

from tests.integration.kube_fixtures import api, crds, kubectl, namespace

__all__ = ["api", "crds", "kubectl", "namespace"]
