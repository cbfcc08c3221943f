"""The loop's inbox (issue 21, item 11): bounded whatever a dropper's churn makes, one entry per repeated
event, folders in turn, and a folder whose events overflow it is told to be rescanned, once."""

from __future__ import annotations

import threading

from tests.helpers import wait_for
from watcher.core.folders import Folder
from watcher.core.inbox import Inbox
from watcher.core.messages import Control, EventKind, EventsLost, Message, PathEvent

A = Folder("/drop/a", "111111", recursive=False, polling=False)
B = Folder("/drop/b", "222222", recursive=False, polling=False)


def ev(kind: EventKind, path: str, folder: Folder = A) -> PathEvent:
    return PathEvent(kind, path, folder)


def drain(inbox: Inbox) -> list[Message]:
    taken = []
    while (message := inbox.get_nowait()) is not None:
        taken.append(message)
    return taken


def test_repeated_events_of_a_file_are_one_each_in_the_order_of_their_last_occurrence() -> None:
    inbox = Inbox()
    for kind in ("write", "write", "finished", "deleted", "write", "write", "finished"):
        inbox.put(ev(EventKind(kind), "/drop/a/x.png"))
    assert len(inbox) == 3
    taken = drain(inbox)
    assert [m.kind for m in taken if isinstance(m, PathEvent)] == ["deleted", "write", "finished"]
    assert len(inbox) == 0


def test_a_churn_past_the_bound_is_dropped_and_the_folder_told_once_while_others_keep_their_events() -> None:
    inbox = Inbox(per_folder=100, total=1000)
    inbox.put(ev(EventKind.FINISHED, "/drop/b/image.png", B))
    for n in range(100_000):
        inbox.put(ev(EventKind.WRITE, f"/drop/a/c{n}.png"))
        inbox.put(ev(EventKind.DELETED, f"/drop/a/c{n}.png"))
        assert len(inbox) <= 101
    inbox.put(ev(EventKind.ROOT_GONE, "/drop/a"))  # never dropped
    taken = drain(inbox)
    assert taken[0] == ev(EventKind.FINISHED, "/drop/b/image.png", B)
    assert taken[1:] == [ev(EventKind.ROOT_GONE, "/drop/a"), EventsLost(A)]
    # Once the loop has taken the loss, the folder's events are kept again.
    inbox.put(ev(EventKind.WRITE, "/drop/a/later.png"))
    assert drain(inbox) == [ev(EventKind.WRITE, "/drop/a/later.png")]


def test_the_kernels_overflow_is_kept_when_the_folders_events_already_overflowed_the_inbox() -> None:
    """A churn had the inbox drop A's events; then the kernel's queue overflowed too. Its EVENTS_LOST
    must still reach the loop: the rescan `EventsLost` asks for may start before the watches are back,
    and only the kernel's message asks for a listing after them (a file dropped then was never seen)."""
    inbox = Inbox(per_folder=100, total=1000)
    for n in range(1000):
        inbox.put(ev(EventKind.WRITE, f"/drop/a/c{n}.png"))
    inbox.put(ev(EventKind.EVENTS_LOST, "/drop/a"))
    inbox.put(ev(EventKind.WRITE, "/drop/a/more.png"))
    assert drain(inbox) == [EventsLost(A), ev(EventKind.EVENTS_LOST, "/drop/a")]


def test_folders_take_turns_and_other_messages_come_first() -> None:
    inbox = Inbox()
    for n in range(5):
        inbox.put(ev(EventKind.WRITE, f"/drop/a/{n}.png"))
    first = inbox.get_nowait()  # A's waiting events are taken as one
    inbox.put(ev(EventKind.WRITE, "/drop/b/1.png", B))
    inbox.put(ev(EventKind.WRITE, "/drop/a/late.png"))
    inbox.put(Control.STOP)
    rest = drain(inbox)
    assert first == ev(EventKind.WRITE, "/drop/a/0.png")
    assert rest[0] is Control.STOP
    paths = [m.path for m in rest[1:] if isinstance(m, PathEvent)]
    assert paths == [f"/drop/a/{n}.png" for n in range(1, 5)] + ["/drop/b/1.png", "/drop/a/late.png"]


def test_a_loop_waiting_wakes_for_an_event_posted_from_another_thread() -> None:
    inbox = Inbox()
    got: list[Message | None] = []
    loop = threading.Thread(target=lambda: got.append(inbox.get(timeout=30)))
    loop.start()
    inbox.put(ev(EventKind.WRITE, "/drop/a/x.png"))
    loop.join(30)
    assert got == [ev(EventKind.WRITE, "/drop/a/x.png")]
    assert inbox.get(timeout=0.01) is None
    # After it found the inbox empty, the next event wakes it again.
    later = threading.Thread(target=lambda: got.append(inbox.get(timeout=30)))
    later.start()
    inbox.put(ev(EventKind.DELETED, "/drop/a/x.png"))
    later.join(30)
    wait_for(lambda: len(got) == 2, 5, "the second wake-up")
    assert got[1] == ev(EventKind.DELETED, "/drop/a/x.png")
