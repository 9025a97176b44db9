"""Training: one run from data to a saved model (training_run), the epoch loop (trainer), its
schedule, noise, writer and lock, and the processes of a distributed run.

Nothing below this package imports it; lfengine.service starts a run through training_run.
"""
