"""`watcher.disk.descriptors`: the soft limit raised to the hard one, and what is left of it."""

from __future__ import annotations

import resource
import subprocess
import sys

from watcher.disk import descriptors


def test_the_soft_limit_is_raised_to_the_hard_one() -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    soft = 256 if hard == resource.RLIM_INFINITY else min(256, hard)

    def lower() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    program = (
        "import resource; from watcher.disk import descriptors; "
        "before = resource.getrlimit(resource.RLIMIT_NOFILE); now = descriptors.raise_limit(); "
        "print(before[0], now, resource.getrlimit(resource.RLIMIT_NOFILE)[1])"
    )
    out = subprocess.run(
        [sys.executable, "-c", program], preexec_fn=lower, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out[0] == str(soft)
    assert out[1] == ("None" if hard == resource.RLIM_INFINITY else str(hard)) and out[2] == str(hard)


def test_spare_counts_this_process_descriptors() -> None:
    before = descriptors.spare()
    assert before is not None and before > 0
    with open(__file__, "rb"), open(__file__, "rb"):
        assert descriptors.spare() == before - 2
