"""A real HTTP emulator of the useapi.net MiniMax files endpoint (SPEC §1), standard library only.

It listens on a loopback port and answers ``POST /v1/minimax/files/?account=...`` the way the real API
does: bearer-token auth, raw bodies of the accepted media types (``image/png``, ``image/jpeg``,
``audio/mpeg``, ``audio/wav``, ``video/mp4``), the single/several accounts rule, and a
``{"ossPath", "fileID"}`` answer. Bodies are streamed through sha256 in 1 MiB chunks and never held in
memory, so multi-gigabyte uploads are fine.

Tests can make it misbehave with :class:`Fault` (error statuses with or without ``Retry-After``, connection
resets, slow answers, a 200 without ``fileID``, a 200 that is not JSON), either in-process through
:meth:`Emulator.add_fault` or over HTTP through the control endpoints (no auth needed)::

    GET    /_emulator/requests   every request that reached the upload handler (list of dicts)
    DELETE /_emulator/requests   forget them
    GET    /_emulator/uploads    only the successful ones (200 with a fileID)
    GET    /_emulator/faults     pending faults
    POST   /_emulator/faults     add a fault (JSON object with Fault's fields) or a list of them
    DELETE /_emulator/faults     clear pending faults

The parts: :mod:`.faults` (Fault and its parsing), :mod:`.decision` (what to answer, as a pure function),
:mod:`.bodies` and :mod:`.http` (reading bodies, the server and its handler), :mod:`.records`
(RecordedRequest) and :mod:`.emulator` (the Emulator object: state, locks, life).
"""

from watcher.emulator.emulator import Emulator, serve_forever
from watcher.emulator.faults import FAULT_KINDS, Fault, FaultKind
from watcher.emulator.http import API_PREFIX
from watcher.emulator.records import RecordedRequest

__all__ = [
    "API_PREFIX",
    "FAULT_KINDS",
    "Emulator",
    "Fault",
    "FaultKind",
    "RecordedRequest",
    "serve_forever",
]
