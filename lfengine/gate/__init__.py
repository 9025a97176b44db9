"""Drop-in back-end for the GATE LF plugin: the old wrapper's scripts, options and protocol.

``lfengine gate-train`` / ``gate-apply`` run :func:`gate_train_main` / :func:`gate_apply_main`;
``lfengine gate-wrapper DATADIR`` runs :func:`write_wrapper_dir`.
"""

from lfengine.gate.commands import gate_apply_main, gate_train_main, script_main
from lfengine.gate.wrapper import write_wrapper_dir

__all__ = ["gate_apply_main", "gate_train_main", "script_main", "write_wrapper_dir"]
