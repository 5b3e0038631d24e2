"""Hostile or careless data files end in a volume or one LightsegError line: never another
exception, never an allocation driven by a header instead of the bytes actually there."""

from __future__ import annotations

import gzip
import io
import os
import tempfile
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rel_helpers import FUZZ_COUNTS, cli, one_error, patch_bytes, write_ct

from lightseg.data.readers import (
    read_dicom_series,
    read_folder,
    read_nifti,
    read_npz,
    read_pair,
    read_victre,
)
from lightseg.errors import LightsegError

FUZZ = settings(
    max_examples=120,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# A hostile 2D header may make a decoder allocate up to MAX_SLICE_SIDE**2 pixels (4096**2 RGBA:
# 64 MiB) before the missing data is noticed; nothing may go beyond that for these tiny files.
MAX_PEAK = 96 << 20


def outcome(fn, *args) -> str:
    """Run a reader: "ok" (a sane volume) or "refused" (one-line LightsegError); any other
    exception fails the test, and so do a warning (it would print before the error line) and a
    peak allocation above MAX_PEAK."""
    tracemalloc.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            v = fn(*args)
    except LightsegError as e:
        msg = str(e)
        assert msg and "\n" not in msg, msg
        return "refused"
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < MAX_PEAK, f"{fn.__name__} allocated {peak:,} bytes"
    vols = v if isinstance(v, list) else [v]
    for vol in vols:
        assert vol.hu.ndim == 3 and min(vol.hu.shape) > 0 and np.isfinite(vol.hu).all()
        assert vol.mask is None or vol.mask.shape == vol.hu.shape
        assert all(s > 0 for s in vol.spacing)
    return "ok"


# --- VICTRE ----------------------------------------------------------------------------------


def _mhd(folder: Path, dims="4 3 2", spacing="0.1 0.2 0.3", data="p.raw", extra="") -> Path:
    p = folder / "p.mhd"
    p.write_text(
        f"ObjectType = Image\nNDims = 3\nDimSize = {dims}\nElementSpacing = {spacing}\n"
        f"ElementType = MET_UCHAR\nElementDataFile = {data}\n{extra}"
    )
    return p


@pytest.mark.parametrize(
    ("dims", "spacing", "data", "words"),
    [
        ("4 3 2", "0.1 0.2 0.3", "../outside.raw", "points outside"),
        ("4 3 2", "0.1 0.2 0.3", "/etc/hostname", "points outside"),
        ("4 3 2", "0.1 0.2 0.3", "zero.raw", "points outside"),  # symlink to /dev/zero
        ("4 3 2", "0.1 0.2 0.3", "fifo.raw", "not a regular file"),
        ("4 3 2", "0.1 0.2 0.3", "LOCAL", "not a file name"),
        ("4 3 2", "0.1 0.2 0.3", "missing.raw", "not found"),
        ("4 -3 2", "0.1 0.2 0.3", "p.raw", "must be positive"),
        ("4 3 0", "0.1 0.2 0.3", "p.raw", "must be positive"),
        ("4 3", "0.1 0.2 0.3", "p.raw", "3D MET_UCHAR"),
        ("100000 100000 100000", "1 1 1", "p.raw", "at most"),
        ("4 3 2", "0.5", "p.raw", "ElementSpacing must be 3 positive"),
        ("4 3 2", "0.1 nan 0.3", "p.raw", "ElementSpacing must be 3 positive"),
        ("4 3 2", "0.1 -1 0.3", "p.raw", "ElementSpacing must be 3 positive"),
        ("4 x 2", "0.1 0.2 0.3", "p.raw", "not numbers"),
        ("5 3 2", "0.1 0.2 0.3", "p.raw", "the header p.mhd needs 30"),
    ],
)
def test_victre_headers(tmp_path, dims, spacing, data, words):
    (tmp_path / "p.raw").write_bytes(bytes(24))
    (tmp_path.parent / "outside.raw").write_bytes(bytes(24))
    (tmp_path / "zero.raw").symlink_to("/dev/zero")
    os.mkfifo(tmp_path / "fifo.raw")
    with pytest.raises(LightsegError) as e:
        read_victre(_mhd(tmp_path, dims, spacing, data))
    assert words in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_victre_size_is_checked_before_reading(tmp_path, monkeypatch):
    (tmp_path / "p.raw").write_bytes(bytes(10**6))

    def no_read(self):
        raise AssertionError("read before the size check")

    monkeypatch.setattr(Path, "read_bytes", no_read)
    with pytest.raises(LightsegError, match="1000000 bytes, the header p.mhd needs 24"):
        read_victre(_mhd(tmp_path))


def test_victre_gzip_bomb_is_read_bounded(tmp_path):
    (tmp_path / "p.raw.gz").write_bytes(gzip.compress(bytes(50 << 20)))  # 50 MB of zeros
    assert outcome(read_victre, _mhd(tmp_path)) == "refused"  # and peak < 48 MB
    with pytest.raises(LightsegError, match="more than the header p.mhd needs 24"):
        read_victre(_mhd(tmp_path))
    (tmp_path / "p.raw.gz").write_bytes(gzip.compress(bytes(24))[:-6] + b"garbag")
    with pytest.raises(LightsegError, match="cannot read label data"):
        read_victre(_mhd(tmp_path))


def test_victre_good_file_still_reads(tmp_path):
    labels = np.zeros(24, np.uint8)
    labels[5] = 200
    (tmp_path / "p.raw.gz").write_bytes(gzip.compress(labels.tobytes()))
    v = read_victre(_mhd(tmp_path))
    assert v.hu.shape == (2, 3, 4) and v.mask.sum() == 1


_MHD_KEYS = ["ObjectType", "NDims", "DimSize", "ElementSpacing", "ElementType",
             "ElementDataFile", "CompressedData", "ElementByteOrderMSB"]  # fmt: skip
_numbers = st.lists(
    st.one_of(st.integers(-5, 2**40).map(str), st.floats().map(str), st.text(max_size=3)),
    max_size=4,
).map(" ".join)
_values = {
    "DimSize": _numbers,
    "ElementSpacing": _numbers,
    "ElementDataFile": st.sampled_from(
        [
            "p.raw",
            "p.raw.gz",
            "../p.raw",
            "/dev/zero",
            "/etc/hostname",
            "LOCAL",
            "",
            "sub/../p.raw",
            "p",
            ".",
            "..",
            "zero.raw",
        ]  # fmt: skip
    ),
    "ElementType": st.sampled_from(["MET_UCHAR", "MET_SHORT", "", "MET_UCHAR extra"]),
    "NDims": st.sampled_from(["3", "2", "4", "x"]),
}


@FUZZ
@given(
    header=st.dictionaries(
        st.sampled_from(_MHD_KEYS), st.text(max_size=20), max_size=len(_MHD_KEYS)
    ).flatmap(
        lambda d: st.fixed_dictionaries(
            {k: _values.get(k, st.text(max_size=20)) for k in d}
            | {k: _values[k] for k in ("DimSize", "ElementDataFile") if k in _values}
        )
    ),
    raw=st.binary(max_size=128),
    gz=st.booleans(),
)
def test_fuzz_victre(header, raw, gz):
    FUZZ_COUNTS["victre .mhd"] += 1
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d) / "data"
        folder.mkdir()
        (folder / "p.raw.gz" if gz else folder / "p.raw").write_bytes(
            gzip.compress(raw) if gz else raw
        )
        (folder / "zero.raw").symlink_to("/dev/zero")
        text = "".join(f"{k} = {v}\n" for k, v in header.items())
        (folder / "p.mhd").write_text(text.replace("\r", "").replace("\x00", ""))
        outcome(read_victre, folder / "p.mhd")


@FUZZ
@given(data=st.binary(max_size=512))
def test_fuzz_mhd_bytes(data):
    FUZZ_COUNTS["victre bytes"] += 1
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "x.mhd").write_bytes(data)
        (Path(d) / "x.raw").write_bytes(data)
        outcome(read_victre, Path(d) / "x.mhd")


# --- DICOM -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("over", "patch", "words"),
    [
        ({"ImageOrientationPatient": [1, 0, 0, 0, 1]}, None, "ImageOrientationPatient needs 6"),
        ({"ImageOrientationPatient": [0, 0, 0, 0, 0, 0]}, None, "is degenerate"),
        ({"PixelSpacing": [0.5]}, None, "PixelSpacing needs 2"),
        ({"PixelSpacing": [0.5, 0]}, None, "PixelSpacing must be positive"),
        (
            {"RescaleSlope": "1234.5"},
            (b"DS\x06\x001234.5", b"DS\x06\x00abc.de"),
            "RescaleSlope is not numeric",
        ),
        (
            {"RescaleIntercept": "1234.5"},
            (b"DS\x06\x001234.5", b"DS\x06\x001e999 "),
            "RescaleIntercept needs 1 fin",
        ),
        (
            {"ImagePositionPatient": [0, 0, 777]},
            (b"0.0\\0.0\\777", b"0.0\\0.0\\x7x"),
            "ImagePositionPatient is not",
        ),
        ({"ImagePositionPatient": [0, 0]}, None, "ImagePositionPatient needs 3"),
        ({"InstanceNumber": 98}, (b"IS\x02\x0098", b"IS\x02\x00zz"), "InstanceNumber is not"),
        ({"Rows": 5000}, None, "5000x8 pixels"),
        ({"BitsAllocated": 12}, None, "one grey frame"),
    ],
)
def test_dicom_header_values(tmp_path, over, patch, words):
    for p in write_ct(tmp_path / "s", **over):
        if patch:
            patch_bytes(p, *patch)
    with pytest.raises(LightsegError) as e:
        read_dicom_series(tmp_path / "s")
    assert words in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_dicom_good_series_still_reads(tmp_path):
    write_ct(tmp_path / "s")
    v = read_dicom_series(tmp_path / "s")
    assert v.hu.shape == (3, 8, 8) and v.hu[2, 0, 0] == 1002 - 1024


@pytest.fixture(scope="module")
def dicom_bytes(tmp_path_factory) -> bytes:
    return write_ct(tmp_path_factory.mktemp("dcm"), n=1)[0].read_bytes()


@settings(FUZZ, max_examples=80)
@given(data=st.data())
def test_fuzz_dicom_bytes(dicom_bytes, data):
    """A valid one-slice CT file with random bytes overwritten or cut off."""
    FUZZ_COUNTS["dicom"] += 1
    b = bytearray(dicom_bytes)
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(128, len(b) - 1))
        b[i] = data.draw(st.integers(0, 255))
    b = b[: data.draw(st.integers(0, len(b)))] if data.draw(st.booleans()) else b
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "IM0").write_bytes(bytes(b))
        outcome(read_dicom_series, Path(d))


# --- PNG -------------------------------------------------------------------------------------


def _png(path: Path, a: np.ndarray, mode: str | None = None) -> Path:
    from PIL import Image

    im = Image.fromarray(a)
    if mode:
        im = im.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)
    return path


def test_16bit_png_rule(tmp_path):
    v = np.array([[32768 - 1000, 32768, 32768 + 50, 65535, 0]], np.uint16)
    img, mask = _png(tmp_path / "a.png", v), _png(tmp_path / "a_mask.png", np.zeros((1, 5), bool))
    hu = read_pair(img, mask).hu[0, 0]
    assert hu.tolist() == [-1000, 0, 50, 3071, -1024]  # HU = value - 32768, clipped
    # stored as HU + 1024 (another convention): refused, not mapped to all-air
    _png(tmp_path / "a.png", np.array([[0, 1024, 2000]], np.uint16))
    _png(tmp_path / "a_mask.png", np.zeros((1, 3), bool))
    with pytest.raises(LightsegError, match=r"do not follow the HU \+ 32768 rule"):
        read_pair(img, mask)


def test_palette_and_1bit_pngs(tmp_path):
    g = np.tile(np.arange(0, 256, 32, dtype=np.uint8), (8, 1))
    m = np.zeros((8, 8), np.uint8)
    m[2:4, 2:5] = 1
    for mode, words in (("P", "palette PNG refused as an image"), ("1", "1-bit PNG refused")):
        img = _png(tmp_path / mode / "a.png", g, mode)
        with pytest.raises(LightsegError, match=words):
            read_pair(img, _png(tmp_path / mode / "a_mask.png", m))
    img = _png(tmp_path / "ok.png", g)
    pal = _png(tmp_path / "pal_mask.png", m, "P")  # palette mask: the indices
    assert read_pair(img, pal).mask.sum() == 6
    one = _png(tmp_path / "one_mask.png", m.astype(bool))  # 1-bit mask: 0/1
    assert read_pair(img, one).mask.sum() == 6


def test_huge_png_is_refused_from_its_header(tmp_path):
    from PIL import Image

    Image.new("L", (5000, 1)).save(tmp_path / "wide.png")
    _png(tmp_path / "m.png", np.zeros((1, 5000), np.uint8))
    with pytest.raises(LightsegError, match="5000x1 pixels"):
        read_pair(tmp_path / "wide.png", tmp_path / "m.png")


@pytest.fixture(scope="module")
def png_bytes() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(buf, format="PNG")
    return buf.getvalue()


@FUZZ
@given(
    data=st.data(),
    mode=st.sampled_from(["L", "LA", "RGB", "RGBA", "P", "1", "I;16", "I", "F", "CMYK"]),
)
def test_fuzz_png(png_bytes, data, mode):
    """Random bytes, a damaged PNG, or a small image in any mode, as image and as mask."""
    from PIL import Image

    FUZZ_COUNTS["png"] += 1
    kind = data.draw(st.sampled_from(["bytes", "damaged", "mode"]))
    if kind == "bytes":
        blob = data.draw(st.binary(max_size=200))
    elif kind == "damaged":
        b = bytearray(png_bytes)
        for _ in range(data.draw(st.integers(1, 6))):
            b[data.draw(st.integers(8, len(b) - 1))] = data.draw(st.integers(0, 255))
        blob = bytes(b)
    else:
        h, w = data.draw(st.integers(1, 12)), data.draw(st.integers(1, 12))
        a = np.random.default_rng(data.draw(st.integers(0, 99))).integers(0, 255, (h, w))
        buf = io.BytesIO()
        try:
            Image.fromarray(a.astype(np.uint8)).convert(mode).save(buf, format="PNG")
        except OSError:  # a mode PNG cannot hold: not a case
            return
        blob = buf.getvalue()
    with tempfile.TemporaryDirectory() as d:
        good = _png(Path(d) / "good.png", np.zeros((8, 8), np.uint8))
        (Path(d) / "x.png").write_bytes(blob)
        outcome(read_pair, Path(d) / "x.png", good)
        outcome(read_pair, good, Path(d) / "x.png")


# --- NPZ / NPY -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hu", "words"),
    [
        (np.zeros((0, 0), np.float32), "empty"),
        (np.zeros((0, 7), np.float32), "empty"),
        (np.zeros((0, 4, 4), np.float32), "empty"),
        (np.array([["a", "b"], ["c", "d"]]), "dtype <U1"),
        (np.ones((2, 2), np.complex64), "dtype complex64"),
        (np.zeros(5, np.float32), "2D slice or 3D volume"),
        (np.float32(3.0), "2D slice or 3D volume"),
        (np.zeros((1, 2, 2, 2), np.float32), "2D slice or 3D volume"),
    ],
)
def test_degenerate_arrays(capsys, tmp_path, hu, words):
    np.savez(tmp_path / "x.npz", hu=hu, mask=np.zeros(np.shape(hu), np.uint8))
    with pytest.raises(LightsegError, match=words):
        read_npz(tmp_path / "x.npz")
    line = one_error(capsys, "data", "check", tmp_path)
    assert line == f"error: 1 problem(s) in {tmp_path}"
    rc, out, _ = cli(capsys, "data", "check", tmp_path)
    assert "x.npz" in out and words.split()[0] in out


def test_object_arrays_and_bad_pixel_mm(tmp_path):
    np.savez(tmp_path / "o.npz", hu=np.array([[1, None]], object), mask=np.zeros((1, 2)))
    with pytest.raises(LightsegError, match="dtype object"):
        read_npz(tmp_path / "o.npz")
    for px in (-1.0, np.nan, [1.0, 2.0], "1mm"):
        np.savez(tmp_path / "p.npz", hu=np.zeros((2, 2)), mask=np.zeros((2, 2)), pixel_mm=px)
        with pytest.raises(LightsegError, match="pixel_mm|dtype"):
            read_npz(tmp_path / "p.npz")


def test_npy_header_claiming_a_huge_array(tmp_path):
    p, mask = tmp_path / "a.npy", tmp_path / "a_mask.npy"
    np.save(mask, np.zeros((4, 4), np.uint8))
    for shape, words in (((20000, 20000), "holds 192 bytes"), ((60000, 60000), "at most")):
        header = np.lib.format.header_data_from_array_1_0(np.zeros((1, 1), np.float64))
        header["shape"] = shape  # 3.2 GB / 28.8 GB claimed, 64 bytes present
        with open(p, "wb") as f:
            np.lib.format.write_array_header_1_0(f, header)
            f.write(bytes(64))
        assert outcome(read_pair, p, mask) == "refused"
        with pytest.raises(LightsegError, match=words):
            read_pair(p, mask)


_dtypes = st.sampled_from(
    [
        np.float32,
        np.float64,
        np.int16,
        np.uint8,
        np.bool_,
        np.complex64,
        "<U2",
        "S2",
        np.float16,
        ">f4",
        "datetime64[s]",
    ]  # fmt: skip
)


@FUZZ
@given(
    shape=st.lists(st.integers(0, 5), max_size=4),
    mshape=st.none() | st.lists(st.integers(0, 5), max_size=4),
    dtype=_dtypes,
    mdtype=_dtypes,
    fill=st.sampled_from([0.0, 1.0, np.nan, np.inf, -1e30]),
)
def test_fuzz_npz_arrays(shape, mshape, dtype, mdtype, fill):
    FUZZ_COUNTS["npz arrays"] += 1
    with np.errstate(all="ignore"):
        hu = np.full(shape, fill if np.dtype(dtype).kind in "fc" else 1).astype(dtype)
    mask = np.ones(shape if mshape is None else mshape).astype(mdtype)
    with tempfile.TemporaryDirectory() as d:
        np.savez(Path(d) / "x.npz", hu=hu, mask=mask)
        assert outcome(read_npz, Path(d) / "x.npz") == "refused" or (
            np.dtype(dtype).kind in "biuf" and len(shape) in (2, 3) and 0 not in shape
        )
        outcome(read_folder, Path(d))


@pytest.fixture(scope="module")
def npz_bytes() -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, hu=np.zeros((4, 4), np.float32), mask=np.eye(4, dtype=np.uint8))
    return buf.getvalue()


@FUZZ
@given(data=st.data())
def test_fuzz_npz_bytes(npz_bytes, data):
    """Random bytes, or a valid npz with bytes overwritten (headers, sizes, CRCs)."""
    FUZZ_COUNTS["npz bytes"] += 1
    if data.draw(st.booleans()):
        blob = data.draw(st.binary(max_size=300))
    else:
        b = bytearray(npz_bytes)
        for _ in range(data.draw(st.integers(1, 6))):
            b[data.draw(st.integers(0, len(b) - 1))] = data.draw(st.integers(0, 255))
        blob = bytes(b)
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "x.npz").write_bytes(blob)
        outcome(read_npz, Path(d) / "x.npz")


@FUZZ
@given(
    descr=st.sampled_from(["'<f4'", "'|O'", "'<c8'", "'<U3'", "'<f8'", "[('a', '<f4')]", "'x'"]),
    shape=st.lists(st.integers(-1, 2**40), max_size=4),
    fortran=st.sampled_from(["False", "True", "1"]),
    payload=st.binary(max_size=64),
)
def test_fuzz_npy_header(descr, shape, fortran, payload):
    FUZZ_COUNTS["npy header"] += 1
    header = f"{{'descr': {descr}, 'fortran_order': {fortran}, 'shape': {tuple(shape)}, }}"
    header = header.ljust(118) + "\n"
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "a.npy").write_bytes(b"\x93NUMPY\x01\x00" + bytes([len(header), 0])
                                        + header.encode() + payload)  # fmt: skip
        np.save(Path(d) / "a_mask.npy", np.zeros((2, 2), np.uint8))
        outcome(read_pair, Path(d) / "a.npy", Path(d) / "a_mask.npy")


# --- NIfTI -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nifti_bytes(tmp_path_factory) -> bytes:
    import nibabel as nib

    p = tmp_path_factory.mktemp("nii") / "a.nii"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 2), np.float32), np.eye(4)), p)
    return p.read_bytes()


@FUZZ
@given(data=st.data())
def test_fuzz_nifti_header(nifti_bytes, data):
    """A valid NIfTI with its 348-byte header damaged (dims, datatype, offsets, zooms)."""
    FUZZ_COUNTS["nifti"] += 1
    b = bytearray(nifti_bytes)
    for _ in range(data.draw(st.integers(1, 6))):
        b[data.draw(st.integers(0, 347))] = data.draw(st.integers(0, 255))
    gz = data.draw(st.booleans())
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / ("a.nii.gz" if gz else "a.nii")
        p.write_bytes(gzip.compress(bytes(b)) if gz else bytes(b))
        outcome(read_nifti, p)


def test_damaged_nifti_prints_nothing_but_the_error(capfd, nifti_bytes, tmp_path):
    """nibabel logs header fixes to stderr through its own handler: none may leak."""
    from lightseg.cli import main

    b = bytearray(nifti_bytes)
    b[0:4] = (999).to_bytes(4, "little")  # sizeof_hdr: nibabel would log "should be 348"
    b[70:72] = (12345).to_bytes(2, "little")  # datatype code it does not know
    (tmp_path / "a.nii").write_bytes(bytes(b))
    (tmp_path / "a_mask.nii").write_bytes(nifti_bytes)
    capfd.readouterr()
    assert main(["data", "check", str(tmp_path)]) == 2
    err = [ln for ln in capfd.readouterr().err.splitlines() if ln.strip()]
    assert err == [f"error: 1 problem(s) in {tmp_path}"], err


def test_length_fields_are_not_trusted(png_bytes, dicom_bytes, tmp_path):
    """A 75-byte PNG whose IDAT length says 4 GB, a DICOM whose pixel data length says 2 GB:
    read or refused without allocating what the header claims (found by the fuzzers)."""
    b = bytearray(png_bytes)
    b[33] = 0xFF  # IDAT chunk length, big-endian
    (tmp_path / "x.png").write_bytes(bytes(b))
    good = _png(tmp_path / "good.png", np.zeros((8, 8), np.uint8))
    outcome(read_pair, tmp_path / "x.png", good)  # the pixels are all there: may read fine
    tag = b"\xe0\x7f\x10\x00OW\x00\x00"  # (7FE0,0010) PixelData, explicit VR little endian
    i = dicom_bytes.index(tag) + len(tag)
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "IM0").write_bytes(
        dicom_bytes[:i] + (0x7FFFFFF0).to_bytes(4, "little") + dicom_bytes[i + 4 :]
    )
    outcome(read_dicom_series, tmp_path / "s")
