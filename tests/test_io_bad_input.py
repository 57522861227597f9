"""Every bad input raises SkytriageInputError naming the file and the cause, on one line."""

from __future__ import annotations

import gzip
import warnings

import numpy as np
import pytest
from astropy.io import fits

from skytriage.errors import SkytriageInputError
from skytriage.io import read_cube, read_frame, read_header, read_ramp


def _image(shape=(40, 50)) -> np.ndarray:
    return np.random.default_rng(0).integers(1, 65536, size=shape, dtype=np.uint16)


def _write(path, data, **cards):
    hdu = fits.PrimaryHDU(data)
    hdu.header.update(cards)
    hdu.writeto(path)
    return path


def _cut(path, size):
    with open(path, "r+b") as f:
        f.truncate(size)
    return path


def _raises(reader, path, cause, **kwargs) -> SkytriageInputError:
    """Call ``reader`` with warnings as errors; check the error type, file and cause."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(SkytriageInputError) as info:
            reader(path, **kwargs)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert cause in message
    assert "\n" not in message
    assert info.value.path == str(path)
    return info.value


def test_missing_file(tmp_path):
    _raises(read_frame, tmp_path / "nope.fits", "file not found")


def test_folder_instead_of_file(tmp_path):
    _raises(read_frame, tmp_path, "is a folder")


def test_text_file(tmp_path):
    path = tmp_path / "notes.fits"
    path.write_text("exposure log\n" * 50)
    _raises(read_frame, path, "not a FITS file")


def test_png_file(tmp_path):
    path = tmp_path / "image.fits"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 20)
    _raises(read_frame, path, "not a FITS file")


def test_empty_file(tmp_path):
    path = tmp_path / "zero.fits"
    path.write_bytes(b"")
    _raises(read_frame, path, "empty file")


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_truncated_in_data(tmp_path, capfd, dtype):
    path = _cut(_write(tmp_path / "cut.fits", _image().astype(dtype)), 2880 + 1000)
    _raises(read_frame, path, "truncated file (3880 of")
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # no astropy warning printed


def test_truncated_in_scaled_data_read_by_astropy(tmp_path, capfd):
    path = _cut(_write(tmp_path / "cut.fits", _image().astype(np.int16), BSCALE=2.0), 4000)
    _raises(read_frame, path, "truncated file")
    assert capfd.readouterr() == ("", "")


def test_truncated_in_header(tmp_path, capfd):
    path = _cut(_write(tmp_path / "cut.fits", _image()), 1000)
    _raises(read_frame, path, "truncated file (1000 bytes")
    assert capfd.readouterr() == ("", "")


@pytest.mark.parametrize("hdu", [None, 1])
@pytest.mark.parametrize(("into_header", "cause"), [
    (1000, "truncated file (9640 bytes, not a multiple of 2880)"),
    (2880, "header has no END card (truncated or corrupt)"),
])
def test_truncated_in_extension_header(tmp_path, capfd, hdu, into_header, cause):
    extension = fits.ImageHDU(_image())
    extension.header.update({f"KEY{i}": i for i in range(40)})  # a two-block header
    path = tmp_path / "cut.fits"
    fits.HDUList([fits.PrimaryHDU(_image()), extension]).writeto(path)
    first_hdu_size = 2880 + 2 * 2880  # header, 4000 data bytes padded to two blocks
    _cut(path, first_hdu_size + into_header)
    _raises(read_frame, path, cause, hdu=hdu)
    assert capfd.readouterr() == ("", "")


def test_truncated_gzip(tmp_path):
    plain = _write(tmp_path / "x.fits", _image((200, 200)))
    path = tmp_path / "cut.fits.gz"
    compressed = gzip.compress(plain.read_bytes())
    path.write_bytes(compressed[: len(compressed) // 2])
    _raises(read_frame, path, "truncated gzip file")


def test_truncated_tile_compressed(tmp_path):
    path = tmp_path / "cut.fits.fz"
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(_image((200, 200)))]).writeto(path)
    _cut(path, path.stat().st_size // 2)
    _raises(read_frame, path, "truncated file")


def test_header_only(tmp_path):
    path = tmp_path / "hdr.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU()]).writeto(path)
    _raises(read_frame, path, "no image data in any HDU")


def test_no_such_hdu(tmp_path):
    path = _write(tmp_path / "one.fits", _image())
    _raises(read_frame, path, "no HDU 'SCI'", hdu="SCI")
    _raises(read_frame, path, "no HDU 3", hdu=3)
    _raises(read_header, path, "no HDU 3", hdu=3)


def test_table_hdu_is_not_an_image(tmp_path):
    path = tmp_path / "table.fits"
    table = fits.BinTableHDU.from_columns([fits.Column(name="a", format="E", array=np.ones(3))])
    fits.HDUList([fits.PrimaryHDU(_image()), table]).writeto(path)
    _raises(read_frame, path, "HDU 1 holds no image data", hdu=1)


def test_cube_given_to_read_frame(tmp_path):
    path = _write(tmp_path / "cube.fits", _image((10, 64, 64)))
    _raises(read_frame, path, "expected a 2-D image, found 3-D (10, 64, 64)")


def test_image_given_to_read_cube(tmp_path):
    path = _write(tmp_path / "img.fits", _image((64, 64)))
    _raises(read_cube, path, "expected a 3-D cube (t, y, x), found 2-D (64, 64)")


def test_image_given_to_read_ramp(tmp_path):
    path = _write(tmp_path / "img.fits", _image((64, 64)))
    _raises(read_ramp, path, "ramp, found 2-D (64, 64)")


def test_five_axes_given_to_read_ramp(tmp_path):
    path = _write(tmp_path / "5d.fits", _image((2, 2, 3, 4, 5)))
    _raises(read_ramp, path, "found 5-D (2, 2, 3, 4, 5)")


def test_nan_pixels(tmp_path):
    data = np.ones((8, 8), dtype=np.float32)
    data[2, 3] = data[4, 4] = np.nan
    data[0, 0] = -np.inf
    path = _write(tmp_path / "nan.fits", data)
    _raises(read_frame, path, "3 non-finite pixels (2 NaN, 1 inf)")


def test_inf_pixels_in_cube(tmp_path):
    data = np.ones((3, 8, 8), dtype=np.float64)
    data[1, 2, 3] = np.inf
    _raises(read_cube, _write(tmp_path / "inf.fits", data), "1 non-finite pixels (0 NaN, 1 inf)")


def test_blank_integers_become_nan_and_are_rejected(tmp_path):
    data = np.arange(1, 17, dtype=np.int16).reshape(4, 4)
    data[0, 0] = -999
    path = _write(tmp_path / "blank.fits", data, BLANK=-999, BSCALE=1.0, BZERO=0.5)
    _raises(read_frame, path, "1 non-finite pixels (1 NaN, 0 inf)")


@pytest.mark.parametrize("shape", [(16, 16), (200, 300)])
def test_all_zero_image(tmp_path, shape):
    path = _write(tmp_path / "zeros.fits", np.zeros(shape, dtype=np.uint16))
    _raises(read_frame, path, "all pixels are zero")


def test_bad_header_gain(tmp_path):
    path = _write(tmp_path / "gain.fits", _image(), GAIN=0.0)
    _raises(read_frame, path, "header GAIN = 0.0 must be finite and > 0")
    path = _write(tmp_path / "gain2.fits", _image(), GAIN="high")
    _raises(read_frame, path, "header GAIN = 'high' is not a number")


def test_negative_readnoise_override(tmp_path):
    path = _write(tmp_path / "rn.fits", _image())
    _raises(read_frame, path, "readnoise = -1 must be finite and >= 0", readnoise=-1)


def test_read_header_of_text_file(tmp_path):
    path = tmp_path / "notes.fits"
    path.write_text("SIMPLE is not here\n" * 10)
    _raises(read_header, path, "not a FITS file")
