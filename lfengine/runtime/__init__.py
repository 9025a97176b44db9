"""How the engine uses this machine: threads and CPU affinity, the memory allocator, the
accelerator (device, precision).

Imports only lfengine.errors.
"""
