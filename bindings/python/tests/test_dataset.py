"""ich.Dataset: samples against ich.Window / numpy, batches, shuffling,
workers, neighbours, missing files and errors."""

import numpy as np
import pytest

import ich

F = np.float32


def make_slices(folder, n, rows=24, columns=20, series=None, z=None):
    """n DICOM slices img0..img<n-1> and a Labels table for them."""
    rng = np.random.default_rng(1)
    labels = ich.Labels()
    pixels = []
    for i in range(n):
        px = rng.integers(0, 3000, size=(rows, columns)).astype(np.int16)
        pixels.append(px)
        kwargs = {}
        if series is not None:
            kwargs["series_instance_uid"] = series[i]
            kwargs["image_position"] = (0.0, 0.0, float(z[i]))
        ich.write_ct(str(folder / ("img%d.dcm" % i)), px, **kwargs)
        labels.add("img%d" % i, [(i >> c) & 1 for c in range(6)])
    return labels, pixels


def test_sample_matches_window(tmp_path):
    labels, pixels = make_slices(tmp_path, 3)
    with ich.Window("blood,brain,bone", size=16, mean=[0.1, 0.2, 0.3],
                    std=[0.5, 0.25, 2.0]) as win, \
            ich.Dataset(labels, tmp_path, window=win, workers=0) as ds:
        assert len(ds) == 3
        assert ds.sample_shape == (3, 16, 16)
        assert ds.label_count == 6
        for i in range(3):
            x, y = ds[i]
            assert x.dtype == np.float32 and x.shape == (3, 16, 16)
            hu = ich.read_dicom(str(tmp_path / ("img%d.dcm" % i))).hu
            np.testing.assert_array_equal(x, win.apply(hu, dtype=np.float32))
            np.testing.assert_array_equal(y, labels.values[i])
        np.testing.assert_array_equal(ds[-1][0], ds.get(2)[0])
        with pytest.raises(IndexError):
            ds[3]


def test_string_window_and_default(tmp_path):
    labels, pixels = make_slices(tmp_path, 2)
    with ich.Dataset(labels, tmp_path, window="brain,bone", size=(8, 10)) as ds:
        assert ds.sample_shape == (2, 8, 10)
        hu = pixels[1].astype(F) - F(1024)
        with ich.Window("brain,bone", size=(8, 10)) as win:
            np.testing.assert_array_equal(ds[1][0], win.apply(hu, dtype=np.float32))
    with ich.Dataset(labels, tmp_path) as ds:  # blood, brain, bone at 256
        assert ds.sample_shape == (3, 256, 256)


def test_csv_labels_and_missing(tmp_path):
    labels, _ = make_slices(tmp_path, 5)
    (tmp_path / "img1.dcm").unlink()
    csv = tmp_path / "labels.csv"
    labels.write(str(csv))
    with ich.Dataset(str(csv), tmp_path, size=8) as ds:
        assert len(ds) == 4
        kept = ds.labels
        assert kept.ids == ["img0", "img2", "img3", "img4"]
        np.testing.assert_array_equal(kept.values, labels.values[[0, 2, 3, 4]])
    assert kept.ids[0] == "img0"  # the copy outlives the dataset
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ich.NotFoundError):
        ich.Dataset(labels, empty)


def test_left_out_counts_missing_and_unreadable(tmp_path):
    """left_out: rows without an image at open, then files that fail to
    load (here a truncated DICOM), each counted once however often read."""
    labels, _ = make_slices(tmp_path, 5)
    (tmp_path / "img1.dcm").unlink()
    data = (tmp_path / "img3.dcm").read_bytes()
    (tmp_path / "img3.dcm").write_bytes(data[: len(data) // 2])
    with ich.Dataset(labels, tmp_path, size=8, batch_size=2, shuffle=False) as ds:
        assert ds.left_out == 1  # img1: no file
        for epoch in (0, 1):
            _, _, rows = collect(ds, epoch)
            assert sorted(int(r) for b in rows for r in b) == [0, 1, 3]  # img3 left out
            assert ds.left_out == 2


def collect(ds, epoch):
    xs, ys, rows = [], [], []
    for x, y, r in ds.batches(epoch):
        xs.append(x)
        ys.append(y)
        rows.append(r)
    return xs, ys, rows


def test_batches_shuffle_and_workers(tmp_path):
    labels, _ = make_slices(tmp_path, 11, 12, 12)
    runs = []
    for workers, prefetch in [(0, 1), (1, 2), (2, 3)]:
        with ich.Dataset(labels, tmp_path, size=8, batch_size=4, seed=3, workers=workers,
                         prefetch=prefetch) as ds:
            assert ds.num_batches == 3
            runs.append([collect(ds, 0), collect(ds, 1)])
    (x0, y0, r0), (x1, _, r1) = runs[0]
    assert [len(r) for r in r0] == [4, 4, 3]
    assert x0[0].shape == (4, 3, 8, 8) and x0[2].shape == (3, 3, 8, 8)
    assert y0[0].shape == (4, 6)
    order0, order1 = np.concatenate(r0), np.concatenate(r1)
    assert sorted(order0) == list(range(11))
    assert sorted(order1) == list(range(11))
    assert list(order0) != list(order1)
    np.testing.assert_array_equal(np.concatenate(y0), labels.values[order0])
    for other in runs[1:]:
        for epoch in range(2):
            for a, b in zip(runs[0][epoch], other[epoch]):
                assert len(a) == len(b)
                for u, v in zip(a, b):
                    np.testing.assert_array_equal(u, v)
    # fresh arrays per batch
    assert x0[0] is not x0[1] and not np.shares_memory(x0[0], x0[1])
    # each sample in a batch equals ds[row]
    with ich.Dataset(labels, tmp_path, size=8, batch_size=4, seed=3) as ds:
        x, _, rows = next(ds.batches(1))
        for k, row in enumerate(rows):
            np.testing.assert_array_equal(x[k], ds[int(row)][0])


def test_positive_only(tmp_path):
    """set_positive_only("any") draws only the any-positive rows (odd i in
    make_slices), each once per epoch in full batches, with the pixels and
    labels of the unrestricted dataset; None draws every row again."""
    labels, _ = make_slices(tmp_path, 13, 12, 12)
    for workers in (0, 2):
        with ich.Dataset(labels, tmp_path, size=8, batch_size=4, seed=5, workers=workers) as ds, \
                ich.Dataset(labels, tmp_path, size=8, batch_size=4, workers=0) as full:
            assert ds.positive_only is None and len(ds) == 13
            next(ds.batches(0))  # an unfinished epoch: abandoned
            ds.set_positive_only("Any")
            assert ds.positive_only == "Any"
            assert len(ds) == 6 and ds.num_batches == 2
            assert len(ds.labels) == 13
            for epoch in range(2):
                xs, ys, rows = collect(ds, epoch)
                assert [len(r) for r in rows] == [4, 2]
                order = np.concatenate(rows)
                assert sorted(order) == list(range(1, 13, 2))
                y = np.concatenate(ys)
                assert (y[:, 0] >= 0.5).all()
                np.testing.assert_array_equal(y, labels.values[order])
                x = np.concatenate(xs)
                for k, row in enumerate(order):
                    np.testing.assert_array_equal(x[k], full[int(row)][0])
            # indices count the drawn rows, in table order
            np.testing.assert_array_equal(ds[1][0], full[3][0])
            np.testing.assert_array_equal(ds[-1][1], full[11][1])
            with pytest.raises(IndexError):
                ds[6]
            with pytest.raises(ich.NotFoundError, match="nosuch"):
                ds.set_positive_only("nosuch")
            assert len(ds) == 6
            ds.set_positive_only(None)
            assert ds.positive_only is None and len(ds) == 13 and ds.num_batches == 4
            with pytest.raises(TypeError):
                ds.set_positive_only(3)


def test_no_shuffle_drop_last(tmp_path):
    labels, _ = make_slices(tmp_path, 7, 8, 8)
    with ich.Dataset(labels, tmp_path, size=4, batch_size=3, shuffle=False,
                     drop_last=True) as ds:
        assert ds.num_batches == 2
        _, _, rows = collect(ds, 5)
        assert [list(r) for r in rows] == [[0, 1, 2], [3, 4, 5]]


def test_neighbors(tmp_path):
    series = ["1.2.9.1"] * 3 + ["1.2.9.2"] * 2
    z = [2.0, 0.0, 1.0, 5.0, 4.0]
    labels, _ = make_slices(tmp_path, 5, 8, 8, series=series, z=z)
    with ich.Dataset(labels, tmp_path, window="brain", size=4) as single, \
            ich.Dataset(labels, tmp_path, window="brain", size=4, neighbors=1) as stack:
        assert stack.sample_shape == (3, 4, 4)
        # z order in series 1: img1, img2, img0; in series 2: img4, img3
        want = {0: [2, 0, 0], 1: [1, 1, 2], 2: [1, 2, 0], 3: [4, 3, 3], 4: [4, 4, 3]}
        for i, sources in want.items():
            x = stack[i][0]
            for k, s in enumerate(sources):
                np.testing.assert_array_equal(x[k], single[s][0][0])


def test_png_with_metadata(tmp_path):
    rng = np.random.default_rng(2)
    labels = ich.Labels()
    images = []
    for i in range(3):
        img = rng.integers(0, 256, size=(6, 5), dtype=np.uint8)
        images.append(img)
        ich.write_png(str(tmp_path / ("s%d.png" % i)), img)
        labels.add("s%d" % i, [0] * 6)
    meta = tmp_path / "meta.csv"
    meta.write_text("ID,series,z\ns0,a,3\ns1,a,1\ns2,a,2\n")
    with ich.Window("brain", mean=0.5, std=0.25) as win, \
            ich.Dataset(labels, tmp_path, window=win, neighbors=1, metadata_csv=meta,
                        extension=".png") as ds:
        assert ds.sample_shape == (3, 6, 5)
        x = ds[2][0]  # z order s1, s2, s0: s2 sits between s1 and s0
        for k, s in enumerate([1, 2, 0]):
            want = (images[s].astype(F) / F(255) - F(0.5)) / F(0.25)
            np.testing.assert_array_equal(x[k], want)


def test_augment(tmp_path):
    labels, _ = make_slices(tmp_path, 3, 12, 12)
    with ich.Augment("hflip:1") as aug, \
            ich.Dataset(labels, tmp_path, size=8, augment=aug, seed=1) as ds:
        plain, _ = ds.get(1)
        flipped, _ = ds.get(1, augment=True, epoch=0)
        np.testing.assert_array_equal(flipped, plain[:, :, ::-1])
    # a text recipe; random choices depend on (seed, epoch, sample) only
    with ich.Dataset(labels, tmp_path, size=8, augment="rotate:1:30", seed=1, batch_size=3,
                     shuffle=False) as ds:
        plain = ds.get(2)[0]
        e0, e0b, e1 = (ds.get(2, augment=True, epoch=e)[0] for e in (0, 0, 1))
        assert not np.array_equal(plain, e0)
        np.testing.assert_array_equal(e0, e0b)
        assert not np.array_equal(e0, e1)
        x, _, rows = next(ds.batches(1))
        np.testing.assert_array_equal(x[2], e1)


def test_errors(tmp_path):
    labels, _ = make_slices(tmp_path, 2, 8, 8)
    with pytest.raises(ich.InvalidArgumentError):
        ich.Dataset(labels, tmp_path, batch_size=0)
    with pytest.raises(ich.InvalidArgumentError):
        ich.Dataset(labels, tmp_path, workers=-1)
    with pytest.raises(ich.InvalidArgumentError):
        ich.Dataset(labels, tmp_path, extension=".jpg")
    with pytest.raises(TypeError):
        ich.Dataset(42, tmp_path)
    with pytest.raises(TypeError):
        ich.Dataset(labels, tmp_path, window=3.5)
    with pytest.raises(ich.NotFoundError):
        ich.Dataset(labels, tmp_path, window="nosuchwindow")
    with pytest.raises(ich.IchIOError):
        ich.Dataset(str(tmp_path / "missing.csv"), tmp_path)
    ds = ich.Dataset(labels, tmp_path, size=4)
    with pytest.raises(ich.InvalidArgumentError):
        ds.get(0, epoch=-1)
    with pytest.raises(ich.InvalidArgumentError):
        ds.get(5)
    with pytest.raises(TypeError):
        ds["a"]
    ds.close()
    ds.close()
    with pytest.raises(ich.InvalidArgumentError):
        len(ds)
    assert "closed" in repr(ds)


def test_model_option_matches_label_columns(tmp_path):
    """Dataset(model=...) puts the table's label columns in the model's
    order by name, as Labels.match does; refuses a table without them."""
    labels, _ = make_slices(tmp_path, 4)
    order = ["subdural", "any", "epidural", "intraparenchymal", "intraventricular",
             "subarachnoid"]
    model = ich.Model("input 3x8x8, flatten, linear 6")
    model.metadata["ich.labels"] = ",".join(order)
    columns = labels.columns
    with ich.Dataset(labels, tmp_path, size=8, workers=0, shuffle=False, model=model) as ds:
        assert ds.labels.columns == order
        for i in range(4):
            np.testing.assert_array_equal(
                ds[i][1], labels.values[i, [columns.index(c) for c in order]])
    labels.write(tmp_path / "labels.csv")
    model.metadata["ich.labels"] = ",".join(order[:5] + ["bleed"])
    with pytest.raises(ich.ShapeError) as e:
        ich.Dataset(tmp_path / "labels.csv", tmp_path, size=8, workers=0, model=model)
    assert "labels.csv" in str(e.value) and "missing: bleed" in str(e.value)
    with pytest.raises(TypeError):
        ich.Dataset(labels, tmp_path, model="best.safetensors")


def test_monochrome1_slices_are_shown_inverted(tmp_path):
    """A MONOCHROME1 slice (the same stored values and HU, tagged with
    pydicom) gives the inverted display values, 1 - v, before the
    normalisation, as Window.apply(DicomImage) does."""
    pydicom = pytest.importorskip("pydicom")
    labels, _ = make_slices(tmp_path, 2)
    ds = pydicom.dcmread(tmp_path / "img1.dcm")
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.save_as(tmp_path / "img1.dcm")
    with ich.Window("brain", size=8) as plain, \
            ich.Window("brain", size=8, mean=[0.3], std=[0.5]) as win, \
            ich.Dataset(labels, tmp_path, window=win, workers=0, shuffle=False) as data:
        m1 = ich.read_dicom(tmp_path / "img1.dcm")
        assert m1.monochrome1
        v = plain.apply(m1.hu, dtype=np.float32)  # no inversion on bare HU
        np.testing.assert_allclose(data[1][0], (1 - v - F(0.3)) / F(0.5), atol=1e-5)
        np.testing.assert_array_equal(data[1][0], win.apply(m1, dtype=np.float32))
        m2 = ich.read_dicom(tmp_path / "img0.dcm")
        np.testing.assert_array_equal(data[0][0], win.apply(m2.hu, dtype=np.float32))
