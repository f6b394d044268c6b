"""MNIST / CIFAR-10 loaders through the real torchvision classes, on files generated here.

The files follow torchvision 0.28's on-disk formats: MNIST's raw IDX files under
``<root>/MNIST/raw/`` (big-endian magic 2051/2049, sizes, uint8 data; torchvision checks only that
they exist) and CIFAR-10's pickled batches under ``<root>/cifar-10-batches-py/`` (dicts with
``data`` (n, 3072) uint8 and ``labels``; torchvision checks their MD5 sums against the real
files', so the tests point those sums at the generated files). Nothing touches the network.
"""

import hashlib
import json
import pickle
import struct
import subprocess
import sys

import numpy as np
import pytest
import torch

from bayesdepth import data
from bayesdepth.data import vision

pytestmark = pytest.mark.filterwarnings("ignore:torchvision.s compiled operators:RuntimeWarning")


def write_mnist(root, n_train=30, n_test=12, seed=0):
    rng = np.random.default_rng(seed)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    out = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(
            struct.pack(">IIII", 2051, n, 28, 28) + images.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(
            struct.pack(">II", 2049, n) + labels.tobytes())
        out[prefix] = (images, labels)
    return out


def write_cifar10(root, monkeypatch, per_batch=6, n_test=8, seed=0):
    """Six pickled batches and the meta file; torchvision's MD5 table pointed at them."""
    cifar = vision.torchvision_datasets().CIFAR10
    rng = np.random.default_rng(seed)
    folder = root / cifar.base_folder
    folder.mkdir(parents=True)
    written, sums = {}, {}
    for name, n in [(f"data_batch_{i}", per_batch) for i in range(1, 6)] + [("test_batch", n_test)]:
        batch = {"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
                 "labels": rng.integers(0, 10, size=n).tolist()}
        (folder / name).write_bytes(pickle.dumps(batch))
        written[name] = batch
    meta = {"label_names": [str(i) for i in range(10)]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))
    for name in [*written, "batches.meta"]:
        sums[name] = hashlib.md5((folder / name).read_bytes()).hexdigest()
    monkeypatch.setattr(cifar, "train_list", [[f"data_batch_{i}", sums[f"data_batch_{i}"]]
                                              for i in range(1, 6)])
    monkeypatch.setattr(cifar, "test_list", [["test_batch", sums["test_batch"]]])
    monkeypatch.setattr(cifar, "meta", {**cifar.meta, "md5": sums["batches.meta"]})
    return written


def test_mnist_reads_torchvision_raw_files_and_standardises(tmp_path):
    files = write_mnist(tmp_path)
    d = data.mnist(tmp_path, download=False, dtype=torch.float64)
    assert d.x_train.shape == (30, 1, 28, 28) and d.x_test.shape == (12, 1, 28, 28)
    assert d.num_classes == 10 and d.y_train.dtype == torch.int64
    images, labels = files["train"]
    assert torch.equal(d.y_train, torch.as_tensor(labels, dtype=torch.int64))
    pixels = torch.as_tensor(images, dtype=torch.float64) / 255
    expected = (pixels - pixels.mean()) / pixels.std()
    torch.testing.assert_close(d.x_train[:, 0], expected)
    assert abs(float(d.x_train.mean())) < 1e-10
    sub = data.mnist(tmp_path, download=False, num_train=10, num_test=5, seed=3)
    assert sub.x_train.shape == (10, 1, 28, 28) and sub.y_test.shape == (5,)
    assert sub.x_train.dtype == torch.float32


def test_cifar10_reads_torchvision_pickled_batches(tmp_path, monkeypatch):
    batches = write_cifar10(tmp_path, monkeypatch)
    d = data.cifar10(tmp_path, download=False)
    assert d.x_train.shape == (30, 3, 32, 32) and d.x_test.shape == (8, 3, 32, 32)
    first = torch.as_tensor(batches["data_batch_1"]["data"][0], dtype=torch.float64)
    first = first.reshape(3, 32, 32) / 255  # channel-major rows, as in the real files
    train = torch.cat([torch.as_tensor(batches[f"data_batch_{i}"]["data"])
                       for i in range(1, 6)]).reshape(-1, 3, 32, 32).double() / 255
    mean, std = train.mean((0, 2, 3)), train.std((0, 2, 3))
    torch.testing.assert_close(d.x_train[0].double(), (first - mean[:, None, None])
                               / std[:, None, None], rtol=1e-5, atol=1e-5)
    assert d.y_test.tolist() == batches["test_batch"]["labels"]


def test_missing_files_bad_arguments_and_missing_torchvision(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match=r"MNIST files not found.*download=True"):
        data.mnist(tmp_path, download=False)
    write_mnist(tmp_path)
    with pytest.raises(ValueError, match="num_train must be at most the 30 images"):
        data.mnist(tmp_path, download=False, num_train=31)
    with pytest.raises(TypeError, match="download must be True or False"):
        data.mnist(tmp_path, download="no")
    with pytest.raises(ValueError, match="dtype"):
        data.mnist(tmp_path, download=False, dtype=torch.int64)
    monkeypatch.setattr(vision, "_DATASETS", None)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", None)  # "not installed"
    with pytest.raises(ImportError, match=r"pip install 'bayesdepth\[vision\]'"):
        data.mnist(tmp_path, download=False)


def test_default_root_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("BAYESDEPTH_DATA", str(tmp_path))
    assert vision.default_root() == tmp_path
    write_mnist(tmp_path)
    assert data.mnist(download=False).x_train.shape[0] == 30


def test_torchvision_import_workaround_in_a_fresh_process():
    """With the CUDA-built torchvision wheel next to CPU torch the import needs the workaround
    (one warning naming the operators); with a matching build it imports without one."""
    code = ("import warnings, json\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n"
            "    from bayesdepth.data import vision\n"
            "    ds = vision.torchvision_datasets(); vision.torchvision_datasets()\n"
            "print(json.dumps([str(x.message) for x in w if 'torchvision' in str(x.message)]))\n"
            "print(ds.MNIST.__name__)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    messages, name = proc.stdout.strip().splitlines()[-2:]
    messages = json.loads(messages)
    assert name == "MNIST" and len(messages) <= 1
    if messages:
        assert "torchvision::nms and torchvision::qnms" in messages[0]


def test_the_command_line_fits_mnist_and_cifar10(tmp_path, monkeypatch):
    from bayesdepth.app.cli import main

    monkeypatch.setenv("BAYESDEPTH_DATA", str(tmp_path))
    write_mnist(tmp_path, n_train=40, n_test=10)
    write_cifar10(tmp_path, monkeypatch, per_batch=4, n_test=6)
    for name in ("mnist", "cifar10"):
        out = tmp_path / f"run_{name}"
        assert main(["fit", "--data", name, "--model", "bnn", "--steps", "3", "--batch-size", "8",
                     "--num-samples", "2", "--out", str(out), "--quiet"]) in (0, None)
        summary = json.loads((out / "run.json").read_text())
        assert summary["data"] == name and 0 <= summary["test_accuracy"] <= 1
    # The sample command's diagnostics plot the smallest variables; on 784 pixels those include
    # the 12,544 first-layer weights, whose KDE plots take many minutes: plot one variable.
    from bayesdepth.app import outputs

    monkeypatch.setattr(outputs, "small_variables",
                        lambda idata, limit=4: sorted(idata.posterior.data_vars,
                                                      key=lambda n: idata.posterior[n].size)[:1])
    out = tmp_path / "sample"
    assert main(["sample", "--data", "mnist", "--model", "bnn", "--chains", "2", "--draws", "3",
                 "--warmup", "2", "--batch-size", "8", "--out", str(out), "--quiet"]) in (0, None)
    assert (out / "run.json").is_file()
