"""Recorded protocol sessions, replayed through a real engine process.

A session is ``NAME.requests.jsonl`` (what a client sends, plus directives for the replayer) and
``NAME.expected.jsonl`` (the messages the engine must send back); tests/sessions/README.md
describes both files and the comparison rules. ``lfengine replay SESSION...`` starts
``python -m lfengine serve``, sends the requests in each framing the session names, and reports
every difference; ``python -m lfengine.replay --record SESSION`` writes an expected file.

session: the session files; engine: the child process; compare: what is compared, and how;
runner: replaying, recording and reporting.
"""

from lfengine.replay.runner import ReplayOutcome, record_session, replay_main, run_session
from lfengine.replay.session import Session, SessionError, SessionSkipped, load_session, session_paths

__all__ = [
    "ReplayOutcome",
    "Session",
    "SessionError",
    "SessionSkipped",
    "load_session",
    "record_session",
    "replay_main",
    "run_session",
    "session_paths",
]
