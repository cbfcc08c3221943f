"""A real HTTP emulator of the useapi.net MiniMax API (SPEC §1, §8), standard library only.

It listens on a loopback port and answers, with bearer-token auth as the real API does:

    POST /v1/minimax/files/?account=...   raw bodies of image/png, image/jpeg, audio/mpeg, audio/wav or
                                          video/mp4 (streamed through sha256, never held in memory);
                                          answers {"ossPath", "fileID"}
    POST /v1/minimax/videos/create        JSON {"account", "fileID", "model", "prompt"?, ...}: the fileID
                                          must be one it issued for that account; at most max_jobs videos
                                          per account at once (429 beyond); answers {"videoId", ...}
    GET  /v1/minimax/videos/{videoId}     status 11 (queued), 12 (processing, percent rising), then 2
                                          (completed) after generation_seconds, with videoURL/downloadURL
    GET  /_emulator/downloads/{n}.mp4     a small valid MP4 it makes itself (:mod:`.mp4`); any request
                                          carrying an Authorization header or the token gets 403 and is
                                          recorded (Emulator.token_leaks)

Tests make it misbehave with :class:`Fault` (``target`` upload, create, poll or download; error statuses
with or without ``Retry-After``, resets, cut answers, slow answers, odd answers, moderated or endless
videos, HTML, huge or redirecting downloads), in-process through :meth:`Emulator.add_fault` or over
HTTP through the control endpoints (no auth needed)::

    GET    /_emulator/requests   every request (uploads, creates, polls, downloads), each with a "kind";
                                 ?kind=create (repeatable) keeps those kinds only
    DELETE /_emulator/requests   forget them
    GET    /_emulator/uploads    only the successful uploads (200 with a fileID)
    GET    /_emulator/faults     pending faults
    POST   /_emulator/faults     add a fault (JSON object with Fault's fields) or a list of them
    DELETE /_emulator/faults     clear pending faults
    GET    /_emulator/videos     every video made, as it is now
    GET    /_emulator/settings   {"generation_seconds", "max_jobs"}
    POST   /_emulator/settings   change them (for videos created from then on)

The parts: :mod:`.faults` (Fault), :mod:`.decision` (an upload's answer, as a pure function),
:mod:`.videos` (the videos over a clock), :mod:`.downloads` and :mod:`.mp4` (what a download sends),
:mod:`.bodies`, :mod:`.wire`, :mod:`.http` and :mod:`.video_http` (the server and its handler),
:mod:`.records` (what each request left), :mod:`.emulator` (the Emulator object: state, locks, life)
and :mod:`.serve` (the emulator alone in the foreground).
"""

from watcher.emulator.emulator import Emulator
from watcher.emulator.faults import FAULT_KINDS, Fault, FaultKind
from watcher.emulator.http import API_PREFIX
from watcher.emulator.records import CreateRecord, DownloadRecord, PollRecord, RecordedRequest
from watcher.emulator.serve import serve_forever

__all__ = [
    "API_PREFIX",
    "FAULT_KINDS",
    "CreateRecord",
    "DownloadRecord",
    "Emulator",
    "Fault",
    "FaultKind",
    "PollRecord",
    "RecordedRequest",
    "serve_forever",
]
