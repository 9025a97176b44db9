"""The resident engine's loop: owns stdin/stdout, the reader and worker threads, signals and exit.

Three threads:
- the reader frames stdin, validates each request and admits it to the dispatcher; it runs
  the immediate methods (status, cancel) itself, at once, and queues the rest;
- the worker runs queued requests one at a time, in arrival order (a train blocks it);
- the main thread only waits, so that signal handlers never interrupt code holding a lock.

Replies leave through a ReplyOutbox in request order, whichever thread finishes a request, so
a client can read "the next reply belongs to my oldest unanswered request".
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any, BinaryIO

from lfengine.errors import LfEngineError
from lfengine.protocol import envelope
from lfengine.protocol.framing import DEFAULT_MAX_MESSAGE_BYTES, MessageWriter, open_reader
from lfengine.protocol.stream import FramingError
from lfengine.runtime.allocator import release_freed_memory
from lfengine.runtime.process import protocol_output, serving_process, termination_signals
from lfengine.serving.dispatcher import Call, Dispatcher

# The logger keeps its name from before the move into lfengine/serving/: clients see it in log
# notifications (protocol.md) and may filter on it.
log = logging.getLogger("lfengine.server")

EXIT_OK = 0  # end of input, shutdown request, SIGTERM/SIGINT/SIGHUP
EXIT_INTERNAL_ERROR = 1  # a bug in the engine's own loop (see stderr)
EXIT_STREAM_CORRUPT = 3  # msgpack input that could not be resynchronised
EXIT_OUTPUT_CLOSED = 4  # a reply could not be written: the client closed our stdout
MAX_WAITING_REQUESTS = 1024
#: Requests waiting behind the running one may hold this many bytes as read. Decoded, they take
#: several times more: 1000 queued apply-batches of 1 MB took 4.5 GB, and seq-pos1 sentences
#: (18 strings per token) take 11 times their JSON size: 64 MiB of them took 711 MB. One
#: request alone is always accepted (up to the message size limit); beyond this the next is
#: refused with EngineBusy.
MAX_QUEUED_BYTES = 16 * 2**20


class ReplyOutbox:
    """Writes responses in the order their requests arrived, from whichever thread completes them."""

    def __init__(self, writer: MessageWriter, on_broken: Any) -> None:
        self._writer = writer
        self._on_broken = on_broken
        self._lock = threading.Lock()
        self._issued = 0
        self._next = 0
        self._ready: dict[int, bytes] = {}
        self._broken = False

    def reserve(self) -> int:
        """A place in the reply order; called by the reader thread as each request arrives."""
        with self._lock:
            ticket = self._issued
            self._issued += 1
            return ticket

    def deliver(self, ticket: int, response: dict[str, Any]) -> None:
        data = self._encode(response)
        with self._lock:
            self._ready[ticket] = data
            while self._next in self._ready:
                data = self._ready.pop(self._next)
                self._next += 1
                if self._broken:
                    continue
                try:
                    self._writer.write(data)
                except OSError as exc:
                    self._broken = True
                    log.error("cannot write replies any more (%s); stopping", exc)
                    self._on_broken()

    def _encode(self, response: dict[str, Any]) -> bytes:
        try:
            return self._writer.encode(response)
        except Exception as exc:  # a handler returned something the framing cannot carry
            log.exception("reply could not be encoded")
            return self._writer.encode(envelope.error_response(response.get("id"), exc))


class _Marker:
    def __init__(self, name: str, exit_code: int = EXIT_OK) -> None:
        self.name = name
        self.exit_code = exit_code


_END_OF_INPUT = _Marker("end of input")
_WAKE = _Marker("wake")


class Server:
    """One engine session over a pair of byte streams."""

    def __init__(
        self, stdin: BinaryIO, stdout: BinaryIO, *, fmt: str = "auto", max_message_bytes: int
    ) -> None:
        self._stdin = stdin
        self._stdout = stdout
        self._fmt = fmt
        self._limit = max_message_bytes
        self._writer: MessageWriter | None = None
        self._outbox: ReplyOutbox | None = None
        self._work: queue.SimpleQueue = queue.SimpleQueue()  # put() is safe in signal handlers
        self._stopping = False
        self._queued_bytes = 0  # the wire size of the requests in self._work
        self._queued_lock = threading.Lock()
        self._finished = threading.Event()
        self._exit_code = EXIT_OK
        transport = {"format": None, "max_message_bytes": max_message_bytes}
        self.dispatcher = Dispatcher(self._notify, transport=transport)

    def run(self) -> int:
        """Serve until end of input, shutdown, a signal or a fatal stream error; the exit code."""
        threading.Thread(target=self._read_loop, name="lfengine-reader", daemon=True).start()
        threading.Thread(target=self._work_loop, name="lfengine-worker", daemon=True).start()
        while not self._finished.wait(0.5):
            pass
        self.dispatcher.close()
        return self._exit_code

    def terminate(self) -> None:
        """Signal handler: finish the running request (a training stops at its next batch),
        answer the requests already read with ShuttingDown, then exit 0."""
        self._stopping = True
        self.dispatcher.cancel_trainings()
        self._work.put(_WAKE)

    # --- reader thread ----------------------------------------------------------------------

    def _read_loop(self) -> None:
        try:
            reader = open_reader(self._stdin, self._fmt, self._limit)
            if reader is None:
                self._work.put(_END_OF_INPUT)
                return
            self._writer = MessageWriter(self._stdout, reader.format)
            self._outbox = ReplyOutbox(self._writer, self._output_closed)
            self.dispatcher.transport["format"] = reader.format
            log.debug("serving %s framing", reader.format)
            for item in reader:
                if self._stopping:
                    return
                if isinstance(item, FramingError):
                    self._outbox.deliver(self._outbox.reserve(), envelope.error_response(None, item))
                    if item.fatal:
                        self._work.put(_Marker("corrupt input", EXIT_STREAM_CORRUPT))
                        return
                elif not self._accept(item, reader.message_bytes):
                    return  # shutdown was read: nothing after it is read or answered
        except Exception:
            log.exception("the reader failed")
            self._work.put(_Marker("reader failure", EXIT_INTERNAL_ERROR))
            return
        self._work.put(_END_OF_INPUT)

    def _accept(self, message: Any, size: int = 0) -> bool:
        """Validate, admit and run or queue one message (``size`` bytes as read); False once
        shutdown has been queued."""
        try:
            request = envelope.parse_request(message)
        except envelope.InvalidRequest as exc:
            self._outbox.deliver(self._outbox.reserve(), envelope.error_response(exc.request_id, exc))
            return True
        ticket = None if request.notification else self._outbox.reserve()
        try:
            call = self.dispatcher.admit(request)
        except LfEngineError as exc:
            self._complete(ticket, request.id, exc)
            return True
        if call.immediate:
            self._run(ticket, call)
        elif self._work.qsize() >= MAX_WAITING_REQUESTS:
            self.dispatcher.discard(call)
            busy = envelope.EngineBusy(
                f"{MAX_WAITING_REQUESTS} requests are already waiting; send this one later"
            )
            self._complete(ticket, request.id, busy)
        elif not self._hold_bytes(size):
            self.dispatcher.discard(call)
            busy = envelope.EngineBusy(
                f"the requests already waiting hold over {MAX_QUEUED_BYTES // 2**20} MiB; send this "
                "one once earlier replies have come",
                limit=MAX_QUEUED_BYTES,
            )
            self._complete(ticket, request.id, busy)
        else:
            self._work.put((ticket, call, size))
            return request.method != "shutdown"
        return True

    def _hold_bytes(self, size: int) -> bool:
        """Count a request of ``size`` bytes as waiting, unless the queue would exceed its limit."""
        with self._queued_lock:
            if self._queued_bytes and self._queued_bytes + size > MAX_QUEUED_BYTES:
                return False
            self._queued_bytes += size
            return True

    def _release_bytes(self, size: int) -> None:
        with self._queued_lock:
            self._queued_bytes -= size

    # --- worker thread ----------------------------------------------------------------------

    def _work_loop(self) -> None:
        try:
            while True:
                item = self._work.get()
                if isinstance(item, _Marker):
                    if item is _WAKE and not self._stopping:
                        continue
                    self._finish(item.exit_code)
                    return
                ticket, call, size = item
                self._release_bytes(size)
                if self._stopping:
                    self.dispatcher.discard(call)
                    self._complete(
                        ticket, call.request.id, envelope.ShuttingDown("the engine is shutting down")
                    )
                    continue
                self._run(ticket, call)
                if call.request.method == "train":
                    release_freed_memory()  # a training's working set is not needed again soon
                if self.dispatcher.shutdown_requested:
                    self._finish(EXIT_OK)
                    return
        except Exception:
            log.exception("the worker failed")
            self._finish(EXIT_INTERNAL_ERROR)

    def _finish(self, exit_code: int) -> None:
        if self._exit_code == EXIT_OK:
            self._exit_code = exit_code
        self._finished.set()

    # --- replies ----------------------------------------------------------------------------

    def _run(self, ticket: int | None, call: Call) -> None:
        try:
            outcome = self.dispatcher.execute(call)
        except Exception as exc:
            outcome = exc
        self._complete(ticket, call.request.id, outcome)

    def _complete(self, ticket: int | None, request_id: Any, outcome: Any) -> None:
        """Turn a result or an exception into the response for ``ticket`` (None: no reply)."""
        if isinstance(outcome, BaseException):
            if envelope.error_code(outcome) == envelope.INTERNAL_ERROR:
                log.error("request %r failed", request_id, exc_info=outcome)
            elif ticket is None:  # a notification: the log is the only trace of its failure
                log.warning("notification failed: %s", outcome)
            else:
                log.info("request %r failed: %s", request_id, outcome)
            response = envelope.error_response(request_id, outcome)
        else:
            response = envelope.result_response(request_id, outcome)
        if ticket is not None:
            self._outbox.deliver(ticket, response)

    def _notify(self, method: str, params: dict[str, Any]) -> None:
        writer = self._writer
        if writer is None or self._exit_code == EXIT_OUTPUT_CLOSED:
            return
        try:
            writer.send(envelope.notification(method, params))
        except OSError:
            self._output_closed()

    def _output_closed(self) -> None:
        self._exit_code = EXIT_OUTPUT_CLOSED
        self.terminate()


def serve(
    stdin_binary: BinaryIO,
    stdout_binary: BinaryIO,
    *,
    fmt: str = "auto",
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> int:
    """Run the engine on these streams until it should exit; return the process exit code."""
    if fmt not in ("auto", "json", "msgpack"):
        raise ValueError(f"format must be auto, json or msgpack, got {fmt!r}")
    if max_message_bytes < 1024:
        raise ValueError(f"max_message_bytes must be at least 1024, got {max_message_bytes}")
    serving_process()
    with protocol_output(stdout_binary) as protocol_out:
        server = Server(stdin_binary, protocol_out, fmt=fmt, max_message_bytes=max_message_bytes)
        with termination_signals(server.terminate):
            return server.run()
