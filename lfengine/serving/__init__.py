"""Serving: the resident engine behind the JSON-RPC protocol (server reads and writes frames,
dispatcher answers the methods, model_registry keeps loaded models, trainings tracks running
trainings, log_notifications forwards log records to the client).

Nothing below this package imports it; the CLI's ``serve`` command starts it.
"""
