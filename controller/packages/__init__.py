"""Code packages, controller side: settle new uploads, collect unused ones (``settler``)."""
