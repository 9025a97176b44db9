"""The model directory: model.json and its content-named weight and checkpoint files, committed by
one rename, loaded without pickles; the training state kept for resume.

Imports lfengine.files and lfengine.errors only.
"""
