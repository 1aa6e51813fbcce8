"""The LocalStorage contract the registry relies on: tags and compare-and-swap, ages, copies, moves, locks."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

import pytest

from parity._io import sha256_bytes
from parity.errors import RegistryError
from parity.registry import LocalStorage
from parity.registry._storage import ConflictError


def test_root_is_absolute_and_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert LocalStorage("rel").root == tmp_path / "rel"
    assert LocalStorage("~/reg").root == tmp_path / "user" / "reg"
    assert repr(LocalStorage(tmp_path / "r")) == f"LocalStorage({str(tmp_path / 'r')!r})"


def test_read_tagged_returns_the_content_hash(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    storage.write_bytes_atomic("m/index.json", b"v1")
    assert storage.read_tagged("m/index.json") == (b"v1", sha256_bytes(b"v1"))
    with pytest.raises(FileNotFoundError):
        storage.read_tagged("m/missing.json")


def test_write_if_is_a_compare_and_swap_on_the_content_tag(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    # None means "only if absent".
    tag1 = storage.write_if("m/index.json", b"v1", None)
    assert tag1 == sha256_bytes(b"v1") and storage.read_bytes("m/index.json") == b"v1"
    with pytest.raises(ConflictError, match="changed by another writer"):
        storage.write_if("m/index.json", b"other", None)
    tag2 = storage.write_if("m/index.json", b"v2", tag1)
    assert tag2 == sha256_bytes(b"v2") and storage.read_bytes("m/index.json") == b"v2"
    # A writer holding the old tag lost the race: refused, content untouched.
    with pytest.raises(ConflictError):
        storage.write_if("m/index.json", b"stale", tag1)
    assert storage.read_bytes("m/index.json") == b"v2"
    assert isinstance(ConflictError("x"), RegistryError)
    # A tag given for an absent key is a conflict too (someone deleted it).
    with pytest.raises(ConflictError):
        storage.write_if("m/gone.json", b"x", tag1)
    assert not storage.exists("m/gone.json")


def test_age_is_the_newest_modification_under_a_prefix(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    assert storage.age("staging/abc") is None
    storage.write_bytes_atomic("staging/abc/deep/f.bin", b"x")
    now = time.time()
    folder, sub, child = tmp_path / "staging/abc", tmp_path / "staging/abc/deep", tmp_path / "staging/abc/deep/f.bin"
    for path, seconds in ((folder, 5000), (sub, 4000), (child, 300)):
        os.utime(path, (now - seconds, now - seconds))
    age = storage.age("staging/abc")
    assert age is not None and 300 <= age < 4000  # the file deep inside is the newest thing
    os.utime(child, (now - 9000, now - 9000))
    age = storage.age("staging/abc")
    assert age is not None and 4000 <= age < 5000  # now the sub-folder is
    os.utime(child, (now + 3600, now + 3600))  # a clock ahead of ours: never a negative age
    assert storage.age("staging/abc") == 0.0
    os.utime(child, (now - 700, now - 700))
    file_age = storage.age("staging/abc/deep/f.bin")
    assert file_age is not None and 700 <= file_age < 4000


def test_put_dir_copies_the_listed_files_read_only(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.bin").write_bytes(b"a")
    (src / "sub" / "b.bin").write_bytes(b"b")
    (src / "unlisted.bin").write_bytes(b"u")
    storage = LocalStorage(tmp_path / "root")
    storage.put_dir(src, "models/m/.staging/x", ["a.bin", "sub/b.bin"])
    dest = tmp_path / "root/models/m/.staging/x"
    assert (dest / "a.bin").read_bytes() == b"a" and (dest / "sub" / "b.bin").read_bytes() == b"b"
    assert not (dest / "unlisted.bin").exists()
    assert (dest / "a.bin").stat().st_mode & 0o777 == 0o444
    assert (dest / "sub" / "b.bin").stat().st_mode & 0o777 == 0o444
    with pytest.raises(RegistryError, match="invalid storage key"):
        storage.put_dir(src, "models/m/.staging/y", ["../src/a.bin"])


def test_move_refuses_an_existing_destination_even_an_empty_one(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    storage.write_bytes_atomic("s/one/f", b"1")
    storage.move("s/one", "versions/deep/1")  # parents are created
    assert storage.read_bytes("versions/deep/1/f") == b"1" and not storage.exists("s/one")
    storage.write_bytes_atomic("s/two/f", b"2")
    (tmp_path / "versions/deep/2").mkdir()  # os.rename would silently replace an empty folder
    with pytest.raises(FileExistsError, match="already exists"):
        storage.move("s/two", "versions/deep/2")
    assert storage.read_bytes("s/two/f") == b"2" and storage.list("versions/deep/2") == []


def test_delete_removes_files_folders_and_links_but_not_link_targets(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "root")
    storage.delete("never/there")  # not an error
    storage.write_bytes_atomic("a/f", b"1")
    storage.delete("a/f")
    assert not storage.exists("a/f") and storage.exists("a")
    storage.write_bytes_atomic("a/b/c", b"1")
    storage.delete("a")
    assert not storage.exists("a")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_bytes(b"k")
    (tmp_path / "root" / "link").symlink_to(outside, target_is_directory=True)
    storage.delete("link")
    assert not (tmp_path / "root" / "link").is_symlink()
    assert (outside / "keep").read_bytes() == b"k"  # the link went, not what it pointed at
    (tmp_path / "root" / "dangling").symlink_to(tmp_path / "nowhere")
    storage.delete("dangling")
    assert not (tmp_path / "root" / "dangling").is_symlink()


def test_exists_list_and_local_paths(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    storage.write_bytes_atomic("m/b", b"")
    storage.write_bytes_atomic("m/a/x", b"")
    assert storage.exists("m") and storage.exists("m/a") and storage.exists("m/b")
    assert not storage.exists("m/c")
    assert storage.list("m") == ["a", "b"]
    assert storage.list("m/b") == []  # a file has no children
    assert storage.local_path("m/a") == tmp_path / "m" / "a"
    assert storage.fetch("m/a") == tmp_path / "m" / "a"


def test_append_bytes_creates_parents_and_appends(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    storage.append_bytes("new/dir/log", b"1\n")
    storage.append_bytes("new/dir/log", b"2\n")
    assert (tmp_path / "new/dir/log").read_bytes() == b"1\n2\n"


def test_lock_is_exclusive_and_released(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    path = tmp_path / "locks" / "churn.lock"

    def try_lock() -> bool:
        # flock locks belong to an open file description: another open of the file competes like
        # another process would.
        with open(path, "a+b") as fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            return True

    with storage.lock("churn"):
        assert path.is_file()
        assert not try_lock()
        with storage.lock("fraud"):  # another name is another lock
            assert not try_lock()
    assert try_lock()
    with pytest.raises(ValueError, match="boom"), storage.lock("churn"):
        raise ValueError("boom")
    assert try_lock()  # released on an exception too
    assert path.is_file()  # never deleted (see LocalStorage.lock)


def test_lock_works_on_a_root_that_does_not_exist_yet(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "new" / "registry")
    with storage.lock("churn"):  # the first thing a fresh registry may do
        assert (tmp_path / "new" / "registry" / "locks" / "churn.lock").is_file()
