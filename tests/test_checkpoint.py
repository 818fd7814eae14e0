import os
import pickle
import struct

import pytest
import torch

import mil_core.checkpoint as checkpoint
from mil_core.checkpoint import (checkpoint_metadata, load_checkpoint, prepare_checkpoint_path,
                                 save_checkpoint)
from mil_core.errors import CheckpointError, ConfigError


def _state():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.5, 0.999))
    net(torch.randn(2, 3, 8, 8)).sum().backward()
    opt.step()
    return net, opt, {"model": net.state_dict(), "optim": opt.state_dict(), "step": 17,
                      "losses": [1.5, float("inf")], "shape": torch.Size([2, 3]),
                      "name": "g", "nested": {3: (1, "a", None)}}


def test_round_trip_restores_every_value_and_type(tmp_path):
    torch.manual_seed(0)
    net, opt, state = _state()
    path = save_checkpoint(tmp_path / "run" / "ck.safetensors", state, metadata={"profile": "smoke"})
    back = load_checkpoint(path)
    for k, v in state["model"].items():
        assert torch.equal(back["model"][k], v) and back["model"][k].dtype == v.dtype
    assert back["step"] == 17 and back["losses"] == [1.5, float("inf")]
    assert back["shape"] == (2, 3) and back["nested"] == {3: (1, "a", None)}
    # the optimizer state loads into a fresh optimizer (int param keys survive)
    opt2 = torch.optim.Adam(net.parameters(), lr=0.1)
    opt2.load_state_dict(back["optim"])
    assert opt2.param_groups[0]["lr"] == 1e-3 and opt2.param_groups[0]["betas"] == (0.5, 0.999)
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    assert checkpoint_metadata(path) == {"profile": "smoke"}


def test_shared_storage_and_non_contiguous_tensors(tmp_path):
    w = torch.arange(12.0).reshape(3, 4)
    state = {"a": w, "b": w, "t": w.t()}
    back = load_checkpoint(save_checkpoint(tmp_path / "c", state))
    assert torch.equal(back["a"], w) and torch.equal(back["t"], w.t())


def test_save_is_atomic_and_keeps_the_old_file_on_failure(tmp_path):
    path = tmp_path / "ck"
    save_checkpoint(path, {"x": torch.ones(3)})
    with pytest.raises(CheckpointError, match="module"):
        save_checkpoint(path, {"x": torch.nn.Linear(2, 2)})  # a module, not a state dict
    assert torch.equal(load_checkpoint(path)["x"], torch.ones(3))
    assert sorted(os.listdir(tmp_path)) == ["ck"]  # no temp file left behind


def test_missing_folder_truncated_and_foreign_files(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at .*nothere"):
        load_checkpoint(tmp_path / "nothere")
    with pytest.raises(CheckpointError, match="is a folder"):
        load_checkpoint(tmp_path)
    good = save_checkpoint(tmp_path / "good", {"x": torch.randn(100)})
    data = good.read_bytes()
    for cut in (4, 40, len(data) - 10):
        (tmp_path / "cut").write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match="truncated"):
            load_checkpoint(tmp_path / "cut")
    from safetensors.torch import save_file
    save_file({"w": torch.zeros(2)}, tmp_path / "plain.safetensors")
    with pytest.raises(CheckpointError, match="not a mil-companion checkpoint"):
        load_checkpoint(tmp_path / "plain.safetensors")
    (tmp_path / "text").write_bytes(b"hello world, not a checkpoint at all")
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "text")


def test_tampered_tensor_bytes_fail_the_checksum(tmp_path):
    path = save_checkpoint(tmp_path / "ck", {"x": torch.zeros(64)})
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # flip a byte inside the tensor data
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum"):
        load_checkpoint(path)


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {_Evil.marker}",))


@pytest.mark.parametrize("writer", ["torch.save", "pickle"])
def test_pickled_code_is_refused_and_never_run(tmp_path, writer):
    _Evil.marker = tmp_path / "pwned"
    path = tmp_path / "evil.ckpt"
    if writer == "torch.save":
        torch.save({"x": _Evil()}, path)
    else:
        path.write_bytes(pickle.dumps({"x": _Evil()}, protocol=4))
    with pytest.raises(CheckpointError, match="never unpickles"):
        load_checkpoint(path)
    assert not _Evil.marker.exists()


def test_header_edit_is_refused(tmp_path):
    path = save_checkpoint(tmp_path / "ck", {"x": torch.zeros(4)})
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = data[8:8 + n].replace(b"mil-companion-checkpoint", b"mil-companion-checkpoinX")
    path.write_bytes(data[:8] + header + data[8 + n:])
    with pytest.raises(CheckpointError, match="not a mil-companion checkpoint"):
        load_checkpoint(path)


# --- no silent overwrite ---------------------------------------------------------------------
def test_prepare_checkpoint_path_refuses_to_replace_a_run_silently(tmp_path):
    assert prepare_checkpoint_path(None, "x.safetensors", resume=False, overwrite=False) is None
    path = tmp_path / "run" / "x.safetensors"
    for resume, overwrite in [(False, False), (True, False), (False, True)]:  # nothing there yet
        assert prepare_checkpoint_path(tmp_path / "run", "x.safetensors", resume=resume,
                                       overwrite=overwrite) == path
    save_checkpoint(path, {"x": torch.ones(2)})
    before = path.read_bytes()
    with pytest.raises(CheckpointError) as info:
        prepare_checkpoint_path(tmp_path / "run", "x.safetensors", resume=False, overwrite=False)
    msg = str(info.value)
    assert str(path) in msg and all(w in msg for w in ("resume=True", "--resume",
                                                       "overwrite=True", "--overwrite"))
    assert prepare_checkpoint_path(tmp_path / "run", "x.safetensors", resume=True,
                                   overwrite=False) == path
    assert prepare_checkpoint_path(tmp_path / "run", "x.safetensors", resume=False,
                                   overwrite=True) == path
    assert path.read_bytes() == before          # overwrite=True deletes nothing up front


def test_prepare_checkpoint_path_bad_arguments(tmp_path):
    for folder in (None, tmp_path):
        with pytest.raises(ConfigError, match="resume=True and overwrite=True"):
            prepare_checkpoint_path(folder, "x", resume=True, overwrite=True)
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(CheckpointError, match="is a file, not a folder"):
        prepare_checkpoint_path(tmp_path / "file", "x", resume=False, overwrite=False)
    (tmp_path / "x").mkdir()
    with pytest.raises(CheckpointError, match="is a folder, not a checkpoint file"):
        prepare_checkpoint_path(tmp_path, "x", resume=True, overwrite=False)


# --- file mode -------------------------------------------------------------------------------
@pytest.fixture
def umask():
    """Set the process umask for one test and restore it afterwards."""
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_checkpoint_file_gets_the_ordinary_mode(tmp_path, umask):
    umask(0o022)
    path = save_checkpoint(tmp_path / "ck", {"x": torch.ones(2)})
    assert path.stat().st_mode & 0o777 == 0o644
    umask(0o077)
    save_checkpoint(path, {"x": torch.zeros(2)})   # replacing takes the mode of a new file
    assert path.stat().st_mode & 0o777 == 0o600
    assert os.umask(0o077) == 0o077                # the umask itself is left as it was


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_umask_without_proc(tmp_path, umask, monkeypatch):
    def no_proc(*args, **kwargs):
        raise OSError("no /proc here")
    monkeypatch.setattr(checkpoint, "open", no_proc, raising=False)
    umask(0o027)
    assert checkpoint._current_umask() == 0o027
    path = save_checkpoint(tmp_path / "ck", {"x": torch.ones(2)})
    assert path.stat().st_mode & 0o777 == 0o640
    assert os.umask(0o027) == 0o027
