"""The raw-byte read of uncompressed images equals astropy's scaled read, exactly."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

import skytriage.io.fits as io_fits
from skytriage.errors import SkytriageInputError
from skytriage.io import raw_layout, read_frame, read_raw_image


def _uint16(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    data = rng.integers(0, 65536, size=shape, dtype=np.uint16)
    data.flat[0], data.flat[-1] = 0, 65535  # both extremes (only 65535 in a 1-pixel image)
    return data


@pytest.fixture
def raw_spy(monkeypatch):
    """Count calls of the raw-byte reader made by read_frame."""
    calls = []

    def spy(*args, **kwargs):
        calls.append(args)
        return read_raw_image(*args, **kwargs)

    monkeypatch.setattr(io_fits, "read_raw_image", spy)
    return calls


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (13, 1), (7, 13), (257, 131), (1, 33, 17)])
def test_uint16_fast_path_equals_astropy(tmp_path, raw_spy, shape):
    data = _uint16(np.random.default_rng(sum(shape)), shape)
    path = tmp_path / "u16.fits"
    fits.writeto(path, data)
    header = fits.getheader(path)
    assert (header["BITPIX"], header["BZERO"], header["BSCALE"]) == (16, 32768, 1)

    frame = read_frame(path, dtype=None)
    expected = fits.getdata(path).reshape(frame.data.shape)

    assert len(raw_spy) == 1
    assert frame.data.dtype == np.uint16 and frame.data.dtype.isnative
    np.testing.assert_array_equal(frame.data, expected)
    np.testing.assert_array_equal(frame.data, data.reshape(frame.data.shape))


def test_uint16_fast_path_float32_equals_astropy(tmp_path, raw_spy):
    data = _uint16(np.random.default_rng(1), (31, 29))
    path = tmp_path / "u16.fits"
    fits.writeto(path, data)
    frame = read_frame(path)
    assert len(raw_spy) == 1
    assert frame.data.dtype == np.float32
    np.testing.assert_array_equal(frame.data, fits.getdata(path).astype(np.float32))


def test_uint16_in_extension_after_empty_primary(tmp_path, raw_spy):
    data = _uint16(np.random.default_rng(2), (19, 23))
    path = tmp_path / "ext.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data, name="SCI")]).writeto(path)
    frame = read_frame(path, dtype=None)
    assert frame.hdu == 1 and len(raw_spy) == 1
    np.testing.assert_array_equal(frame.data, fits.getdata(path, ext=1))


def test_uint16_with_extensions_before_and_after(tmp_path, raw_spy):
    rng = np.random.default_rng(3)
    first, second = _uint16(rng, (5, 9)), _uint16(rng, (11, 7))
    table = fits.BinTableHDU.from_columns([fits.Column(name="a", format="E", array=np.ones(3))])
    path = tmp_path / "multi.fits"
    fits.HDUList([fits.PrimaryHDU(first), table, fits.ImageHDU(second), fits.ImageHDU(first)]
                 ).writeto(path)
    np.testing.assert_array_equal(read_frame(path, dtype=None).data, first)
    np.testing.assert_array_equal(read_frame(path, hdu=2, dtype=None).data, second)
    np.testing.assert_array_equal(read_frame(path, hdu=3, dtype=None).data,
                                  fits.getdata(path, ext=3))
    assert len(raw_spy) == 3


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32, np.uint32, np.int64, np.uint64,
                                   np.float32, np.float64])
def test_other_layouts_equal_astropy(tmp_path, raw_spy, dtype):
    rng = np.random.default_rng(4)
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
    if info is None:
        data = rng.normal(100, 30, size=(17, 21)).astype(dtype)
    else:
        data = rng.integers(info.min, info.max, size=(17, 21), dtype=dtype, endpoint=True)
        data.flat[0], data.flat[1] = info.min, info.max
    path = tmp_path / "img.fits"
    fits.writeto(path, data)
    frame = read_frame(path, dtype=None)
    reference = fits.getdata(path)
    assert frame.data.dtype == reference.dtype.newbyteorder("=")
    np.testing.assert_array_equal(frame.data, reference)
    np.testing.assert_array_equal(read_frame(path).data, reference.astype(np.float32))
    assert len(raw_spy) == 2


def test_float_nan_kept_by_raw_path(tmp_path):
    data = np.arange(12, dtype=np.float32).reshape(3, 4)
    data[1, 2] = np.nan
    path = tmp_path / "nan.fits"
    fits.writeto(path, data)
    np.testing.assert_array_equal(read_frame(path, nonfinite="keep").data, data)


@pytest.mark.parametrize("cards", [{"BSCALE": 2.0}, {"BZERO": 100.0}, {"BLANK": -1}])
def test_other_scaling_goes_through_astropy(tmp_path, raw_spy, cards):
    path = tmp_path / "scaled.fits"
    hdu = fits.PrimaryHDU(np.arange(1, 13, dtype=np.int16).reshape(3, 4))
    hdu.header.update(cards)
    hdu.writeto(path)
    assert raw_layout(fits.getheader(path)) is None
    frame = read_frame(path, dtype=None)
    assert raw_spy == []
    np.testing.assert_array_equal(frame.data, fits.getdata(path))


def test_raw_layout_recognises_unsigned_offsets():
    header = fits.Header({"BITPIX": 16, "BZERO": 32768, "BSCALE": 1})
    layout = raw_layout(header)
    assert layout.unsigned and layout.natural == np.uint16 and layout.bzero == 32768
    assert raw_layout(fits.Header({"BITPIX": 32, "BZERO": 2**31})).natural == np.uint32
    assert raw_layout(fits.Header({"BITPIX": -32})).unsigned is False
    assert raw_layout(fits.Header({"BITPIX": 16, "BZERO": 32767})) is None


def test_raw_read_rejects_short_file(tmp_path):
    path = tmp_path / "short.fits"
    fits.writeto(path, np.ones((40, 40), dtype=np.uint16))
    layout = raw_layout(fits.getheader(path))
    with open(path, "r+b") as f:
        f.truncate(2880 + 1000)
    with pytest.raises(SkytriageInputError, match=r"short\.fits: truncated file \(3880 of 6080"):
        read_raw_image(path, 2880, (40, 40), layout)
