"""What a person sees on a terminal or stderr: the progress bar, log set-up, and escaping of text
that is not printable.

Imports nothing else of lfengine.
"""
