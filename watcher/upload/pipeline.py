"""One file, start to finish: check it, sniff it, dedupe or upload it, and record the result beside it.

Used by the agent's workers and by `minimax-watcher upload`. The agent decides *when*; this module
decides nothing about scheduling and holds no state between files.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
from collections.abc import Callable
from typing import Any

from watcher.core.api_owner import user_of
from watcher.core.dedupe import HEAD_BYTES, KnownUpload, KnownUploads
from watcher.core.media import MAX_UPLOAD_BYTES, SIDECAR_SUFFIX, SNIFF_BYTES, refusal, sniff_content_type
from watcher.core.messages import UploadJob
from watcher.core.outcome import FailureClass, FileChanged, UploadFailure, UploadOutcome, UploadSuccess
from watcher.core.signature import FileSignature, RecordId, record_id_of, signature_of
from watcher.disk.files import (
    NotRegularFileError,
    OutsideRootError,
    folder_of,
    lstat_beneath,
    open_regular_file_and_stat,
)
from watcher.disk.records import (
    build_error_record,
    build_sidecar,
    remove_error_record_in,
    write_error_record,
    write_json_in,
)
from watcher.state.seal import SidecarSeal
from watcher.upload.client import READ_CHUNK, ProgressCallback, UploadClient

_ACCOUNT_IN_FILE_ID = re.compile(r"-minimax:([^-]+)-file:")


def upload_one(
    client: UploadClient,
    job: UploadJob,
    dedupe: KnownUploads | None = None,
    progress: ProgressCallback | None = None,
) -> tuple[UploadOutcome, FileSignature | None, bool]:
    """Upload `job.path` unless its bytes are already known for the account.

    Returns the outcome, the signature it applies to, and whether the fileID was reused from the
    dedupe index. A file that changes, shrinks, vanishes or is swapped while it is read yields
    `FileChanged`, so no result is ever recorded for bytes other than the file's final ones. The file
    is reached from `job.root` without following a symlink: a folder on the way that became one is
    a swap like any other, never a way out of the watched folder.
    """
    try:
        fd, opened = open_regular_file_and_stat(job.path, job.root)
    except (FileNotFoundError, NotADirectoryError):
        return FileChanged("the file disappeared"), None, False
    except NotRegularFileError:
        return FileChanged("the name no longer points at a regular file"), None, False
    except OutsideRootError:
        return FileChanged("the path no longer lies inside its watched folder"), None, False
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return FileChanged("the name, or a folder on its path, is now a symlink"), None, False
        if exc.errno not in (errno.EACCES, errno.EPERM):
            # Out of descriptors, an I/O error, a stale NFS handle: the file may well be fine later.
            reason = f"cannot open the file: {exc.strerror}"
            return UploadFailure(FailureClass.TEMPORARY, reason, "io", local=True), None, False
        reason = f"cannot open the file: {exc.strerror}; fix its permissions"
        try:
            seen: FileSignature | None = signature_of(lstat_beneath(job.root, job.path))
        except OSError:
            seen = None
        return UploadFailure(FailureClass.PERMANENT, reason, "unreadable", local=True), seen, False
    try:
        signature = signature_of(opened)
        if job.expected is not None and signature != job.expected:
            return FileChanged("the file changed after it settled"), signature, False
        if signature.size == 0:
            return FileChanged("the file is empty"), signature, False
        if signature.size > MAX_UPLOAD_BYTES:
            reason = f"the file is {signature.size} bytes; the API accepts at most 5 GB"
            return UploadFailure(FailureClass.PERMANENT, reason, "too_large", local=True), signature, False
        # One read serves the sniff and the dedupe's head hash.
        head_bytes = os.pread(fd, HEAD_BYTES if dedupe is not None else SNIFF_BYTES, 0)
        first_bytes = head_bytes[:SNIFF_BYTES]
        content_type = sniff_content_type(first_bytes, job.kinds)
        if content_type is None:
            refused = refusal(first_bytes, job.kinds, os.path.basename(job.path))
            failure = UploadFailure(FailureClass.PERMANENT, refused.error, refused.code, local=True)
            return failure, signature, False

        reused: KnownUpload | None = None
        head = hashlib.sha256(head_bytes).hexdigest() if dedupe is not None else None
        if dedupe is not None and head is not None and dedupe.may_hold(job.account_key, signature.size, head):
            sha256 = _hash_file(fd, signature.size)
            if sha256 is None:
                return FileChanged("the file became shorter while it was read"), signature, False
            reused = dedupe.find(job.account_key, signature.size, sha256)
            if reused is not None:
                outcome: UploadOutcome = UploadSuccess(
                    reused.file_id, reused.oss_path, sha256, signature.size, content_type
                )
        if reused is None:
            outcome = client.post_file(fd, signature.size, content_type, job.account, progress)
            if isinstance(outcome, UploadSuccess):
                outcome = _refuse_foreign(outcome, job, client)
        if isinstance(outcome, UploadSuccess):
            current = _unchanged_since(job, fd, signature, outcome.sha256)
            if current is None:
                return FileChanged("the file changed while it was uploaded"), signature, False
            signature = current
        if isinstance(outcome, UploadSuccess) and dedupe is not None and reused is None:
            known = KnownUpload(outcome.file_id, outcome.oss_path)
            dedupe.add(job.account_key, signature.size, outcome.sha256, known, head)
        return outcome, signature, reused is not None
    finally:
        os.close(fd)


def _hash_file(fd: int, size: int) -> str | None:
    digest = hashlib.sha256()
    offset = 0
    while offset < size:
        chunk = os.pread(fd, min(READ_CHUNK, size - offset), offset)
        if not chunk:
            return None
        digest.update(chunk)
        offset += len(chunk)
    return digest.hexdigest()


def _refuse_foreign(outcome: UploadSuccess, job: UploadJob, client: UploadClient) -> UploadOutcome:
    """A fileID embeds its account and its user: one of another account, or of another user than the
    token's, is useless to videos/create here (and would never count as done: uploaded forever)."""
    if job.account and _account_in(outcome.file_id) != job.account:
        error = f"the API answered with a fileID of another account than {job.account}"
        return UploadFailure(FailureClass.TEMPORARY, error, 200)
    owner = getattr(client, "owner", None)
    if owner is not None and owner.user is not None and user_of(outcome.file_id) != owner.user:
        error = "the API answered with a fileID of another user than the token's"
        return UploadFailure(FailureClass.TEMPORARY, error, 200)
    return outcome


def _unchanged_since(job: UploadJob, fd: int, signature: FileSignature, sha256: str) -> FileSignature | None:
    """The file's signature now, or None when the open file, or what the name leads to now inside the
    folder, no longer holds the bytes of `signature` (hashed to `sha256`).

    A folder on the way swapped for a symlink counts as a change even when it leads to the same file:
    the sidecar would be written through it. A change time that moved with size, mtime and inode kept
    is a chmod or a link (the same bytes: the sidecar records the new time) or new bytes with size and
    mtime put back (`cp -p`): a hash of the file tells which, and only then.
    """
    if signature_of(os.fstat(fd)) != signature:
        return None
    try:
        current = signature_of(lstat_beneath(job.root, job.path))
    except OSError:
        return None
    if current != signature:
        return None
    if current.ctime_ns != signature.ctime_ns and _hash_file(fd, signature.size) != sha256:
        return None
    return current


def _account_in(file_id: str) -> str:
    match = _ACCOUNT_IN_FILE_ID.search(file_id)
    return match.group(1) if match else ""


def account_of(job: UploadJob, file_id: str) -> str:
    """The account a fileID belongs to: the folder's, else the one the fileID itself names."""
    if job.account:
        return job.account
    match = _ACCOUNT_IN_FILE_ID.search(file_id)
    return match.group(1) if match else ""


def sidecar_for(
    job: UploadJob,
    success: UploadSuccess,
    signature: FileSignature,
    seal: SidecarSeal | None = None,
    base_url: str | None = None,
) -> dict[str, Any]:
    """The sidecar for an upload, sealed when a seal is given (only sealed sidecars lend fileIDs);
    `base_url`: the API it was uploaded to (`ApiOwner.base_url`), recorded with it."""
    sidecar = build_sidecar(
        base_url=base_url,
        image_path=job.path,
        account=account_of(job, success.file_id),
        file_id=success.file_id,
        oss_path=success.oss_path,
        signature=signature,
        sha256=success.sha256,
        content_type=success.content_type,
    )
    return seal.seal(sidecar) if seal is not None else sidecar


def record_success(
    job: UploadJob, sidecar: dict[str, Any], sync_folder: Callable[[int], None] | None = None
) -> RecordId:
    """Write the sidecar (atomically) and drop any stale error record; the sidecar's `RecordId`.
    Raises OSError if it cannot. `sync_folder`: see `write_json_atomically`."""
    with folder_of(job.root, job.path) as (dir_fd, name):
        record_id = write_json_in(dir_fd, name + SIDECAR_SUFFIX, sidecar, sync_folder=sync_folder)
        remove_error_record_in(dir_fd, name)
    return record_id


def drop_renamed_sidecar(job: UploadJob) -> str | None:
    """After the file's own sidecar is written: remove the sidecar left at the name it was renamed from
    (`job.renamed_from`), if that name is still free and the sidecar is the one the index recorded.
    Returns the old name."""
    if job.renamed_from is None:
        return None
    old_path, record_id = job.renamed_from
    try:
        with folder_of(job.root, old_path) as (dir_fd, name):
            try:
                os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                return None  # a file took the old name again: the sidecar may be its own
            except FileNotFoundError:
                pass
            if (
                record_id_of(os.stat(name + SIDECAR_SUFFIX, dir_fd=dir_fd, follow_symlinks=False))
                != record_id
            ):
                return None  # written or replaced since: not the one this file left behind
            os.unlink(name + SIDECAR_SUFFIX, dir_fd=dir_fd)
    except OSError:
        return None  # gone already, or its folder went: nothing to tidy
    return old_path


def error_record_for(job: UploadJob, failure: UploadFailure, signature: FileSignature) -> dict[str, Any]:
    """The error record of a permanent failure."""
    return build_error_record(
        error=failure.error, code=failure.code, attempts=job.attempt, signature=signature
    )


def record_failure(job: UploadJob, failure: UploadFailure, signature: FileSignature) -> dict[str, Any]:
    """Write the error record of a permanent failure, and return it. Raises OSError if it cannot."""
    record = error_record_for(job, failure, signature)
    write_error_record(job.path, record, job.root)
    return record
