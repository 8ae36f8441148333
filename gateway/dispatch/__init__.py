"""The asynchronous dispatcher: runs queued Event invocations (``dispatcher.Dispatcher``)."""
