"""The file-format readers (csv, npz, folder, idx, cifar) through ``tn.load_dataset``.

Every file is generated in ``tmp_path``; each reader is checked for shapes, classes, splits,
the values that come back (after undoing normalization), and the errors a user would hit.
"""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch

import trimnet as tn
from trimnet.errors import DataError

# ---------------------------------------------------------------------------- helpers


def raw(ds: tn.Dataset, x: torch.Tensor) -> np.ndarray:
    """Undo the dataset's normalization: the values the reader produced."""
    shape = [1] * x.dim()
    shape[1] = -1
    mean = torch.tensor(ds.normalization.mean).view(shape)
    std = torch.tensor(ds.normalization.std).view(shape)
    return (x * std + mean).numpy()


def sizes(ds: tn.Dataset) -> tuple[int, int, int]:
    return len(ds.y_train), len(ds.y_val), len(ds.y_test)


def data_error(source: str, **overrides) -> str:
    with pytest.raises(DataError) as info:
        tn.load_dataset(source, **overrides)
    return str(info.value)


# ---------------------------------------------------------------------------- csv


def write_csv(path, header, rows):
    path.write_text("\n".join([",".join(header)] + [",".join(str(c) for c in r) for r in rows]) + "\n")
    return path


def test_csv_integer_labels_in_last_column(tmp_path):
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(40, 2)).round(3)
    labels = [(10, 2, 1)[i % 3] for i in range(40)]
    rows = [[i, a, b, lab] for i, ((a, b), lab) in enumerate(zip(feats, labels))]
    path = write_csv(tmp_path / "t.csv", ["id", "a", "b", "label"], rows)

    ds = tn.load_dataset(f"csv:{path}")
    assert ds.kind == "tabular" and ds.in_shape == (3,)
    assert ds.class_names == ["1", "2", "10"]  # integers sorted as numbers, not as text
    assert sum(sizes(ds)) == 40 and len(ds.y_test) == 10

    # every split round-trips: feature values and labels, found again by the id column
    for split in ("train", "val", "test"):
        x, y = ds.split(split)
        for row, label in zip(raw(ds, x), y.tolist()):
            i = int(round(row[0]))
            np.testing.assert_allclose(row[1:], feats[i], atol=1e-4)
            assert ds.class_names[label] == str(labels[i])

    # normalization is fit on the train split alone
    train_ids = np.rint(raw(ds, ds.x_train)[:, 0]).astype(int)
    np.testing.assert_allclose(ds.normalization.mean[1:], feats[train_ids].mean(0), atol=1e-4)
    assert not np.allclose(ds.normalization.mean[1:], feats.mean(0), atol=1e-4)


def test_csv_named_string_label_column(tmp_path):
    rows = [[("dog", "cat", "emu")[i % 3], i, i * 0.5] for i in range(30)]
    path = write_csv(tmp_path / "animals.csv", ["species", "n", "half"], rows)
    ds = tn.load_dataset(f"csv:{path}", label="species", val_split=0.0, test_split=0.2)
    assert ds.class_names == ["cat", "dog", "emu"] and ds.in_shape == (2,)
    assert sizes(ds) == (24, 0, 6)
    x = raw(ds, ds.x_train)
    names = [ds.class_names[i] for i in ds.y_train.tolist()]
    assert all(name == ("dog", "cat", "emu")[int(round(n)) % 3] for (n, _), name in zip(x, names))


def test_csv_semicolons_and_quotes(tmp_path):
    path = tmp_path / "excel.csv"
    rows = "".join(f'{i};{i % 5};"k {i % 2}"\n' for i in range(20))
    path.write_text('\ufeffwidth;height;"kind; of"\n' + rows, encoding="utf-8")  # BOM, as Excel writes
    ds = tn.load_dataset(f"csv:{path}", label="kind; of")
    assert ds.class_names == ["k 0", "k 1"] and ds.in_shape == (2,)


@pytest.mark.parametrize("cell, expected", [
    ("abc", "row 5, column 'b': 'abc' is not a number"),
    ("", "row 5, column 'b' is empty"),
    ("nan", "row 5, column 'b': 'nan' is not a finite"),
    ("inf", "row 5, column 'b': 'inf' is not a finite"),
])
def test_csv_bad_cell_names_row_and_column(tmp_path, cell, expected):
    rows = [[i, i, i % 2] for i in range(10)]
    rows[3][1] = cell  # data row 4 = line 5 (the header is line 1)
    path = write_csv(tmp_path / "bad.csv", ["a", "b", "label"], rows)
    message = data_error(f"csv:{path}")
    assert "bad.csv" in message and expected in message


def test_csv_user_errors(tmp_path):
    rows = [[i, i % 2] for i in range(10)]
    path = write_csv(tmp_path / "d.csv", ["x", "y"], rows)
    message = data_error(f"csv:{path}", label="target")
    assert "'target'" in message and "x, y" in message  # an unknown label column lists the columns

    assert "missing.csv" in data_error(f"csv:{tmp_path / 'missing.csv'}")
    assert "header" in data_error(f"csv:{write_csv(tmp_path / 'nohead.csv', ['1', '2'], rows)}")
    assert "empty" in data_error(f"csv:{write_csv(tmp_path / 'empty_label.csv', ['x', 'y'], [[1, 0], [2, '']])}")

    (tmp_path / "ragged.csv").write_text("x,y\n1,0\n2,1,7\n")
    assert "ragged.csv row 3 has 3 cells" in data_error(f"csv:{tmp_path / 'ragged.csv'}")

    one = write_csv(tmp_path / "one.csv", ["x", "y"], [[i, "a"] for i in range(10)])
    assert "one.csv" in (m := data_error(f"csv:{one}")) and "only one class" in m


# ---------------------------------------------------------------------------- npz


def test_npz_tabular_with_test_split_and_class_names(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 5)).astype(np.float32)
    y = np.arange(40) % 3
    x_test = rng.normal(100.0, 1.0, size=(12, 5))  # far from train: a leak into the stats would show
    path = tmp_path / "t.npz"
    np.savez(path, x=x, y=y, x_test=x_test, y_test=np.arange(12) % 3, class_names=np.array(["a", "b", "c"]))

    ds = tn.load_dataset(f"npz:{path}", val_split=0.0)
    assert ds.kind == "tabular" and ds.in_shape == (5,) and ds.class_names == ["a", "b", "c"]
    assert sizes(ds) == (40, 0, 12)  # the shipped test split is used as is
    np.testing.assert_allclose(ds.normalization.mean, x.mean(0), atol=1e-5)
    np.testing.assert_allclose(raw(ds, ds.x_train), x, atol=1e-4)
    np.testing.assert_allclose(raw(ds, ds.x_test), x_test, atol=1e-3)
    assert ds.y_test.tolist() == (np.arange(12) % 3).tolist()

    ds = tn.load_dataset(f"npz:{path}", val_split=0.25)
    assert sizes(ds) == (30, 10, 12)


def test_npz_images_channels_last_uint8(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, size=(20, 6, 5, 3), dtype=np.uint8)  # NHWC
    path = tmp_path / "img.npz"
    np.savez(path, x=x, y=np.arange(20) % 2, x_test=x[:4], y_test=np.array([0, 1, 0, 1]))
    ds = tn.load_dataset(f"npz:{path}", val_split=0.0)
    assert ds.kind == "image" and ds.in_shape == (3, 6, 5) and ds.class_names == ["0", "1"]
    back = raw(ds, ds.x_train)
    assert back[7, 2, 4, 1] == pytest.approx(x[7, 4, 1, 2] / 255.0, abs=1e-5)  # scaled to [0, 1]
    np.testing.assert_allclose(ds.normalization.mean, x.reshape(-1, 3).mean(0) / 255.0, atol=1e-5)


def test_npz_three_dims_and_string_labels(tmp_path):
    x = np.random.default_rng(3).random((24, 7, 7)).astype(np.float32)
    y = np.array(["zebra", "ant"] * 12)
    path = tmp_path / "g.npz"
    np.savez(path, x=x, y=y)
    ds = tn.load_dataset(f"npz:{path}")
    assert ds.kind == "image" and ds.in_shape == (1, 7, 7) and ds.class_names == ["ant", "zebra"]
    assert sum(sizes(ds)) == 24 and len(ds.y_test) == 6


def test_npz_user_errors(tmp_path):
    x = np.zeros((10, 3), dtype=np.float32)
    y = np.arange(10) % 2

    np.savez(tmp_path / "keys.npz", inputs=x, y=y)
    message = data_error(f"npz:{tmp_path / 'keys.npz'}")
    assert "keys.npz" in message and "'x'" in message and "inputs" in message

    np.savez(tmp_path / "lengths.npz", x=x, y=y[:7])
    message = data_error(f"npz:{tmp_path / 'lengths.npz'}")
    assert "lengths.npz" in message and "10 inputs but 7 labels" in message

    # an object array is refused, never unpickled: unpickling this one would create `marker`
    marker = tmp_path / "unpickled"
    objects = np.array([_CreatesFileWhenUnpickled(str(marker))] * 10, dtype=object)
    np.savez(tmp_path / "objects.npz", x=objects, y=y)
    message = data_error(f"npz:{tmp_path / 'objects.npz'}")
    assert "objects.npz" in message and "'x'" in message and "dtype=object" in message
    assert not marker.exists()

    np.savez(tmp_path / "onehot.npz", x=x, y=np.eye(2)[y])
    assert "one-hot" in data_error(f"npz:{tmp_path / 'onehot.npz'}")

    np.savez(tmp_path / "range.npz", x=x, y=y + 5, class_names=np.array(["a", "b"]))
    assert "range.npz" in (m := data_error(f"npz:{tmp_path / 'range.npz'}")) and "0..1" in m

    (tmp_path / "pickle.npz").write_bytes(b"\x80\x04not an archive")
    assert "pickle.npz" in data_error(f"npz:{tmp_path / 'pickle.npz'}")
    assert "nothere.npz" in data_error(f"npz:{tmp_path / 'nothere.npz'}")


class _CreatesFileWhenUnpickled:
    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return open, (self.path, "w")


@pytest.mark.parametrize("cells", [
    pytest.param(slice(None), id="whole-sample"),
    pytest.param(1, id="one-value"),
])
def test_npz_nan_or_inf_names_the_sample(tmp_path, cells):
    x = np.zeros((10, 3), dtype=np.float32)
    x[4, cells] = np.nan
    x[6, cells] = np.inf
    np.savez(tmp_path / "nan.npz", x=x, y=np.arange(10) % 2)
    message = data_error(f"npz:{tmp_path / 'nan.npz'}")
    assert "nan.npz" in message and "sample 4" in message and "NaN or inf" in message


# ---------------------------------------------------------------------------- folder


def save_image(path, array, fmt=None):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path, format=fmt)


def test_folder_train_test_layout_grayscale(tmp_path):
    for split, count in (("train", 6), ("test", 2)):
        for c, name in enumerate(["cats", "dogs"]):
            for i in range(count):
                pixels = np.full((8, 8), 10 * i + 100 * c, dtype=np.uint8)
                pixels[1, 2] = 7
                save_image(tmp_path / split / name / f"{i}.png", pixels)

    ds = tn.load_dataset(f"folder:{tmp_path}", val_split=0.0)
    assert ds.kind == "image" and ds.in_shape == (1, 8, 8) and ds.class_names == ["cats", "dogs"]
    assert sizes(ds) == (12, 0, 4)
    x = raw(ds, ds.x_train)
    assert x[1, 0, 1, 2] == pytest.approx(7 / 255, abs=1e-5) and x[1, 0, 0, 0] == pytest.approx(10 / 255, abs=1e-5)
    assert ds.y_train.tolist() == [0] * 6 + [1] * 6 and ds.y_test.tolist() == [0, 0, 1, 1]
    train_mean = (sum(10 * i + 100 * c for c in range(2) for i in range(6)) * 63 + 7 * 12) / (12 * 64) / 255
    assert ds.normalization.mean == pytest.approx([train_mean], abs=1e-5)


def test_folder_rgb_mixed_sizes_and_resize(tmp_path):
    rng = np.random.default_rng(4)
    for c in ("a", "b"):
        for i in range(8):
            save_image(tmp_path / c / f"{i}.png", rng.integers(0, 256, (10 + i, 12, 3)))
    save_image(tmp_path / "a" / "gray.jpg", rng.integers(0, 256, (9, 9)))  # one gray image: all become RGB
    (tmp_path / "a" / "notes.txt").write_text("not an image, ignored")

    ds = tn.load_dataset(f"folder:{tmp_path}")
    assert ds.in_shape == (3, 32, 32) and ds.class_names == ["a", "b"] and sum(sizes(ds)) == 17
    assert tn.load_dataset(f"folder:{tmp_path}", image_size=16).in_shape == (3, 16, 16)


def test_folder_user_errors(tmp_path):
    for c in ("x", "y"):
        for i in range(8):
            save_image(tmp_path / "ok" / c / f"{i}.png", np.zeros((4, 4)))

    (tmp_path / "ok" / "empty").mkdir()
    message = data_error(f"folder:{tmp_path / 'ok'}")
    assert str(tmp_path / "ok" / "empty") in message and "no images" in message
    (tmp_path / "ok" / "empty").rmdir()

    (tmp_path / "ok" / "y" / "broken.png").write_bytes(b"definitely not a png")
    message = data_error(f"folder:{tmp_path / 'ok'}")
    assert "broken.png" in message
    (tmp_path / "ok" / "y" / "broken.png").unlink()

    assert tn.load_dataset(f"folder:{tmp_path / 'ok'}").class_names == ["x", "y"]  # clean again

    save_image(tmp_path / "single" / "only" / "0.png", np.zeros((4, 4)))
    save_image(tmp_path / "single" / "only" / "1.png", np.zeros((4, 4)))
    message = data_error(f"folder:{tmp_path / 'single'}")
    assert "single" in message and "only one class" in message

    save_image(tmp_path / "flat" / "0.png", np.zeros((4, 4)))
    assert "no class subfolders" in data_error(f"folder:{tmp_path / 'flat'}")
    assert "nowhere" in data_error(f"folder:{tmp_path / 'nowhere'}")


# ---------------------------------------------------------------------------- idx


def idx_bytes(array: np.ndarray) -> bytes:
    magic = 0x800 + array.ndim  # unsigned bytes, ndim dims
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx(path, array, gz=False):
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def mnist_like(n, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 6, 5), dtype=np.uint8), np.arange(n) % 10


def test_idx_directory_gz_train_and_plain_test(tmp_path):
    images, labels = mnist_like(40, 5)
    test_images, test_labels = mnist_like(20, 6)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", images, gz=True)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels, gz=True)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", test_images)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", test_labels)

    ds = tn.load_dataset(f"idx:{tmp_path}", val_split=0.0)
    assert ds.kind == "image" and ds.in_shape == (1, 6, 5)
    assert ds.class_names == [str(i) for i in range(10)]
    assert sizes(ds) == (40, 0, 20)
    assert raw(ds, ds.x_train)[3, 0, 4, 2] == pytest.approx(images[3, 4, 2] / 255, abs=1e-5)
    assert raw(ds, ds.x_test)[9, 0, 1, 1] == pytest.approx(test_images[9, 1, 1] / 255, abs=1e-4)
    assert ds.y_test.tolist() == test_labels.tolist()
    assert ds.normalization.mean == pytest.approx([images.mean() / 255], abs=1e-5)  # train only


def test_idx_images_file_finds_labels_beside_it(tmp_path):
    images, labels = mnist_like(100, 7)  # a stratified val split needs one sample per class
    path = write_idx(tmp_path / "train-images-idx3-ubyte", images)
    write_idx(tmp_path / "train-labels-idx1-ubyte", labels)
    ds = tn.load_dataset(f"idx:{path}")
    assert ds.in_shape == (1, 6, 5) and len(ds.class_names) == 10
    assert sum(sizes(ds)) == 100 and len(ds.y_test) == 25


def test_idx_user_errors(tmp_path):
    images, labels = mnist_like(20, 8)
    write_idx(tmp_path / "train-images-idx3-ubyte", images)
    write_idx(tmp_path / "train-labels-idx1-ubyte", images[:, 0])  # 2 dims: magic 0x802
    message = data_error(f"idx:{tmp_path}")
    assert "train-labels-idx1-ubyte" in message and "0x00000802" in message and "0x00000801" in message

    write_idx(tmp_path / "train-labels-idx1-ubyte", labels)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(idx_bytes(images)[:-30])
    message = data_error(f"idx:{tmp_path}")
    assert "train-images-idx3-ubyte" in message and "truncated" in message

    (tmp_path / "train-images-idx3-ubyte").unlink()
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images))[:-12])
    message = data_error(f"idx:{tmp_path}")
    assert "train-images-idx3-ubyte.gz" in message

    (tmp_path / "empty").mkdir()
    assert "train-images-idx3-ubyte" in data_error(f"idx:{tmp_path / 'empty'}")
    assert "absent" in data_error(f"idx:{tmp_path / 'absent'}")


# ---------------------------------------------------------------------------- cifar


def cifar_records(n, seed):
    rng = np.random.default_rng(seed)
    records = rng.integers(0, 256, (n, 3073), dtype=np.uint8)
    records[:, 0] = np.arange(n) % 10
    return records


def test_cifar_two_batches_subfolder_and_meta(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    b1, b2, tb = cifar_records(20, 1), cifar_records(20, 2), cifar_records(10, 3)
    b1.tofile(folder / "data_batch_1.bin")
    b2.tofile(folder / "data_batch_2.bin")
    tb.tofile(folder / "test_batch.bin")
    names = [f"c{i}" for i in range(10)]
    (folder / "batches.meta.txt").write_text("\n".join(names) + "\n\n")

    ds = tn.load_dataset(f"cifar:{tmp_path}", val_split=0.0)
    assert ds.kind == "image" and ds.in_shape == (3, 32, 32) and ds.class_names == names
    assert sizes(ds) == (40, 0, 10)
    x = raw(ds, ds.x_train)
    c, h, w = 2, 5, 17  # channel-major: byte 1 + c * 1024 + h * 32 + w
    assert x[23, c, h, w] == pytest.approx(b2[3, 1 + c * 1024 + h * 32 + w] / 255, abs=1e-5)
    assert ds.y_train.tolist() == np.concatenate([b1[:, 0], b2[:, 0]]).tolist()
    pixels = np.concatenate([b1, b2])[:, 1:].reshape(-1, 3, 1024) / 255
    np.testing.assert_allclose(ds.normalization.mean, pixels.mean(axis=(0, 2)), atol=1e-5)


def test_cifar_standard_names_without_meta(tmp_path):
    cifar_records(30, 4).tofile(tmp_path / "data_batch_1.bin")
    ds = tn.load_dataset(f"cifar:{tmp_path}", test_split=0.34)
    assert ds.class_names[:3] == ["airplane", "automobile", "bird"] and len(ds.class_names) == 10
    assert sum(sizes(ds)) == 30


def test_cifar_user_errors(tmp_path):
    cifar_records(10, 5).tofile(tmp_path / "data_batch_1.bin")
    (tmp_path / "data_batch_2.bin").write_bytes(cifar_records(2, 6).tobytes()[:-100])
    message = data_error(f"cifar:{tmp_path}")
    assert "data_batch_2.bin" in message and "3073" in message

    (tmp_path / "empty").mkdir()
    assert "data_batch" in data_error(f"cifar:{tmp_path / 'empty'}")
    assert "absent" in data_error(f"cifar:{tmp_path / 'absent'}")
