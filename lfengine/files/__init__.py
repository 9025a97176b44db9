"""Files and text read or written anywhere: path checks, safe opens and atomic writes, JSON text
with located errors, the run log.

The ground floor with lfengine.errors: it imports nothing else of lfengine.
"""
