"""The controller: keeps each function version running the right number of instances.

``controller.autoscaler`` decides how many (pure decider + the loop that feeds it), and
``controller.backends`` runs them (local processes in embedded mode).
"""
