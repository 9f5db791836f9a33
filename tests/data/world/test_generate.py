import hashlib
import json

import pytest

import aestimo.data.world.generate as gen
from aestimo.data.world import generate_world, read_manifest, smoke_config, world_exists
from aestimo.data.world.truth import Truth


def _hashes(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_identical_bytes(smoke_world, tmp_path):
    root, manifest = smoke_world
    other = tmp_path / "again"
    m2 = generate_world(other, smoke_config())
    assert _hashes(root) == _hashes(other)
    assert m2 == manifest


def test_different_seed_differs(smoke_world, tmp_path):
    root, _ = smoke_world
    other = tmp_path / "seed8"
    generate_world(other, smoke_config(seed=8))
    a, b = _hashes(root), _hashes(other)
    assert a["ava/AVA.txt"] != b["ava/AVA.txt"]


def test_manifest_lists_every_file(smoke_world):
    root, manifest = smoke_world
    on_disk = _hashes(root)
    on_disk.pop("manifest.json")
    assert {f["path"]: f["sha256"] for f in manifest["files"]} == on_disk
    assert read_manifest(root) == json.loads(json.dumps(manifest))
    assert manifest["seed"] == smoke_config().seed
    assert set(manifest["counts"]) == {"ava", "flickr_aes", "tad66k", "para", "koniq10k", "spaq", "real_cur", "aadb"}
    assert world_exists(root) and world_exists(root, smoke_config())
    assert not world_exists(root, smoke_config(seed=99))


def test_killed_run_leaves_no_world(tmp_path, monkeypatch):
    root = tmp_path / "w"

    def boom(*a, **k):
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(gen, "render_all", boom)
    with pytest.raises(KeyboardInterrupt):
        generate_world(root, smoke_config())
    assert not world_exists(root)
    assert not root.exists()
    assert list(tmp_path.iterdir()) == []  # the temp folder is cleaned up


def test_manifest_is_written_last(tmp_path, monkeypatch):
    """While the files are written, neither the final root nor a manifest exists."""
    root = tmp_path / "w"
    seen = []
    real = Truth.write

    def spy(self, where):
        seen.append((world_exists(root), (where / gen.MANIFEST).exists(), where == root))
        real(self, where)

    monkeypatch.setattr(Truth, "write", spy)
    generate_world(root, smoke_config())
    assert seen == [(False, False, False)]
    assert world_exists(root)


def test_failed_regeneration_keeps_old_world(smoke_world, tmp_path, monkeypatch):
    root = tmp_path / "w"
    generate_world(root, smoke_config())
    before = _hashes(root)
    monkeypatch.setattr(gen, "render_all", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("disk full")))
    with pytest.raises(RuntimeError):
        generate_world(root, smoke_config(seed=3))
    assert world_exists(root) and _hashes(root) == before


def test_incomplete_folder_is_not_a_world(tmp_path):
    (tmp_path / "ava").mkdir()
    assert not world_exists(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    assert not world_exists(tmp_path)
