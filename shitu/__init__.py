"""The ``shitu`` command: the service's commands and the trainer's, composed (the one place that knows both)."""
