"""lfengine: the deep-learning back-end of the GATE Learning Framework."""

__version__ = "0.1.0"
