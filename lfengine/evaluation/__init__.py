"""Scores of predictions against gold labels (accuracy, F1, span F1, confusion matrices) and their
text tables.

Imports nothing else of lfengine.
"""
