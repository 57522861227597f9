"""Reading images, cubes, ramps and headers from plain, gzipped and tile-compressed FITS."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest
from astropy.io import fits

from skytriage.errors import SkytriageInputError
from skytriage.io import (
    FrameMeta,
    adu_to_electrons,
    electrons_to_adu,
    read_cube,
    read_frame,
    read_header,
    read_meta,
    read_ramp,
)


def _image(shape=(24, 32), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, 65536, size=shape, dtype=np.uint16)


def _write(path, data, **cards):
    hdu = fits.PrimaryHDU(data)
    hdu.header.update(cards)
    hdu.writeto(path)
    return path


@pytest.mark.parametrize("name", ["a.fits", "a.fit", "a.fts", "A.FITS"])
def test_read_frame_float32_by_default(tmp_path, name):
    data = _image()
    frame = read_frame(_write(tmp_path / name, data))
    assert frame.data.dtype == np.float32 and frame.data.shape == (24, 32)
    np.testing.assert_array_equal(frame.data, data.astype(np.float32))
    assert frame.path == str(tmp_path / name) and frame.hdu == 0
    assert frame.header["NAXIS1"] == 32


def test_gzip_and_tile_compressed_equal_uncompressed(tmp_path):
    data = _image((41, 37), seed=5)
    plain = _write(tmp_path / "x.fits", data)
    gz = tmp_path / "x.fits.gz"
    with open(plain, "rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    fz = tmp_path / "x.fits.fz"
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, compression_type="RICE_1")]
                 ).writeto(fz)
    expected = read_frame(plain, dtype=None).data
    for path in (gz, fz):
        frame = read_frame(path, dtype=None)
        assert frame.data.dtype == np.uint16
        np.testing.assert_array_equal(frame.data, expected)
    assert read_frame(fz).hdu == 1


def test_compressed_float_image(tmp_path):
    data = np.random.default_rng(6).normal(1000, 10, (30, 20)).astype(np.float32)
    path = tmp_path / "f.fits.fz"
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, compression_type="GZIP_1")]
                 ).writeto(path)
    frame = read_frame(path)
    np.testing.assert_array_equal(frame.data, fits.getdata(path))  # astropy's lossy decode
    np.testing.assert_allclose(frame.data, data, atol=1.0)


def test_single_plane_cube_squeezes_to_image(tmp_path):
    data = _image((1, 9, 11))
    frame = read_frame(_write(tmp_path / "s.fits", data), dtype=None)
    assert frame.data.shape == (9, 11)
    np.testing.assert_array_equal(frame.data, data[0])


def test_data_are_native_byte_order(tmp_path):
    data = np.linspace(1, 2, 12, dtype=np.float64).reshape(3, 4)
    path = _write(tmp_path / "f8.fits", data)
    assert fits.getdata(path).dtype.byteorder == ">"
    frame = read_frame(path, dtype=None)
    assert frame.data.dtype == np.float64 and frame.data.dtype.isnative


def test_meta_from_header(tmp_path):
    path = _write(tmp_path / "m.fits", _image(), GAIN=1.7, RDNOISE=3.2, EXPTIME=30.0,
                  BUNIT="ADU", **{"DATE-OBS": "2024-05-01T22:10:05.5"})
    meta = read_frame(path).meta
    assert meta == FrameMeta(gain=1.7, readnoise=3.2, exptime=30.0,
                             date_obs="2024-05-01T22:10:05.5", bunit="ADU")


def test_meta_alternative_keywords_and_time_obs(tmp_path):
    path = _write(tmp_path / "m.fits", _image(), EGAIN=0.8, READNOIS=1.5, EXPOSURE=2.0,
                  **{"DATE-OBS": "2024-05-01", "TIME-OBS": "03:04:05"})
    meta = read_frame(path).meta
    assert (meta.gain, meta.readnoise, meta.exptime) == (0.8, 1.5, 2.0)
    assert meta.date_obs == "2024-05-01T03:04:05"


def test_meta_defaults_and_overrides(tmp_path):
    plain = _write(tmp_path / "plain.fits", _image())
    assert read_frame(plain).meta == FrameMeta(1.0, None, None, None, "adu")
    path = _write(tmp_path / "m.fits", _image(), GAIN=1.7, RDNOISE=3.2, EXPTIME=30.0)
    meta = read_frame(path, gain=2.5, readnoise=4.0, exptime=10).meta
    assert (meta.gain, meta.readnoise, meta.exptime) == (2.5, 4.0, 10.0)


def test_meta_falls_back_to_primary_header(tmp_path):
    primary = fits.PrimaryHDU()
    primary.header.update({"GAIN": 2.0, "DATE-OBS": "2023-01-02T03:04:05"})
    sci = fits.ImageHDU(_image(), name="SCI")
    sci.header["RDNOISE"] = 5.0
    path = tmp_path / "ext.fits"
    fits.HDUList([primary, sci]).writeto(path)
    frame = read_frame(path)
    assert frame.hdu == 1 and frame.header["EXTNAME"] == "SCI"
    assert (frame.meta.gain, frame.meta.readnoise) == (2.0, 5.0)
    assert frame.meta.date_obs == "2023-01-02T03:04:05"


def test_read_meta_direct():
    header = fits.Header({"GAIN": "2.0", "DATE-OBS": "01/02/99"})
    meta = read_meta(header, "x.fits", exptime=3)
    assert meta.gain == 2.0 and meta.exptime == 3.0
    assert meta.date_obs is None  # not ISO 8601


def test_nonfinite_keep(tmp_path):
    data = np.ones((5, 5), dtype=np.float32)
    data[0, 0], data[1, 1] = np.nan, np.inf
    frame = read_frame(_write(tmp_path / "n.fits", data), nonfinite="keep")
    assert np.isnan(frame.data[0, 0]) and np.isinf(frame.data[1, 1])
    with pytest.raises(ValueError, match="nonfinite"):
        read_frame(tmp_path / "n.fits", nonfinite="drop")


def test_mostly_zero_image_is_not_all_zero(tmp_path):
    data = np.zeros((100, 100), dtype=np.uint16)  # more zeros than the quick probe looks at
    data[-1, -1] = 7
    frame = read_frame(_write(tmp_path / "dark.fits", data))
    assert frame.data[-1, -1] == 7 and frame.data.sum() == 7


def test_huge_finite_values_are_not_called_nonfinite(tmp_path):
    data = np.full((4, 8), 3e38, dtype=np.float32)  # row sums overflow to inf
    frame = read_frame(_write(tmp_path / "huge.fits", data))
    np.testing.assert_array_equal(frame.data, data)


def test_non_standard_card_does_not_stop_the_read(tmp_path):
    path = _write(tmp_path / "card.fits", _image(), GAIN=1.5)
    raw = bytearray(path.read_bytes())
    at = raw.index(b"END" + b" " * 77)
    raw[at:at + 160] = b"OBSERVER= John Smith".ljust(80) + b"END".ljust(80)
    path.write_bytes(bytes(raw))
    frame = read_frame(path)
    assert frame.meta.gain == 1.5 and frame.data.shape == (24, 32)


def test_read_cube(tmp_path):
    data = _image((6, 8, 10))
    frame = read_cube(_write(tmp_path / "c.fits", data), dtype=None)
    assert frame.data.shape == (6, 8, 10)
    np.testing.assert_array_equal(frame.data, data)
    squeezed = read_cube(_write(tmp_path / "c4.fits", data[None]))
    assert squeezed.data.shape == (6, 8, 10)


def test_read_ramp_3d_becomes_one_integration(tmp_path):
    data = _image((5, 8, 10))
    frame = read_ramp(_write(tmp_path / "r.fits", data), dtype=None)
    assert frame.data.shape == (1, 5, 8, 10)
    np.testing.assert_array_equal(frame.data[0], data)


def test_read_ramp_jwst_style_sci_extension(tmp_path):
    data = _image((2, 4, 8, 10))
    primary = fits.PrimaryHDU()
    primary.header["DATE-OBS"] = "2022-07-12"
    hdul = fits.HDUList([primary, fits.ImageHDU(data, name="SCI"),
                         fits.ImageHDU(np.zeros((8, 10), np.uint32), name="PIXELDQ")])
    path = tmp_path / "jw_uncal.fits"
    hdul.writeto(path)
    frame = read_ramp(path, dtype=None)
    assert frame.hdu == 1 and frame.data.shape == (2, 4, 8, 10)
    np.testing.assert_array_equal(frame.data, data)
    assert frame.meta.date_obs == "2022-07-12"
    assert read_ramp(path, hdu="SCI").hdu == 1
    assert read_ramp(path, hdu=("SCI", 1)).hdu == 1


def test_read_header_reads_no_data(tmp_path, monkeypatch):
    path = _write(tmp_path / "h.fits", _image(), OBJECT="M31")

    def no_data(*args, **kwargs):
        raise AssertionError("data read")

    monkeypatch.setattr(fits.PrimaryHDU, "data", property(no_data))
    header = read_header(path)
    assert header["OBJECT"] == "M31" and header["NAXIS2"] == 24


def test_read_header_picks_data_hdu_or_primary(tmp_path):
    primary = fits.PrimaryHDU()
    primary.header["TELESCOP"] = "T1"
    path = tmp_path / "e.fits"
    fits.HDUList([primary, fits.ImageHDU(_image(), name="SCI")]).writeto(path)
    assert read_header(path)["EXTNAME"] == "SCI"
    assert read_header(path, hdu=0)["TELESCOP"] == "T1"
    empty = tmp_path / "empty.fits"
    primary.writeto(empty)
    assert read_header(empty)["TELESCOP"] == "T1"


def test_units_round_trip():
    adu = np.array([[0, 1, 65535]], dtype=np.uint16)
    electrons = adu_to_electrons(adu, 1.5)
    assert electrons.dtype == np.float32
    np.testing.assert_allclose(electrons, [[0, 1.5, 98302.5]])
    back = electrons_to_adu(electrons, 1.5)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, adu.astype(np.float32))
    with pytest.raises(ValueError, match="gain"):
        adu_to_electrons(adu, 0)


def test_bad_gain_override_is_input_error(tmp_path):
    path = _write(tmp_path / "g.fits", _image())
    for gain in (0, -1.0, "fast", float("nan")):
        with pytest.raises(SkytriageInputError, match=r"g\.fits: gain = .* (must be|is not)"):
            read_frame(path, gain=gain)


def test_egain_wins_over_a_gain_setting(tmp_path):
    """ZWO/QHY drivers write the gain setting in GAIN and e-/ADU in EGAIN."""
    from astropy.io import fits

    from skytriage.io import read_frame

    path = tmp_path / "zwo.fits"
    header = fits.Header({"GAIN": 100, "EGAIN": 0.25})
    fits.PrimaryHDU(np.ones((8, 8), np.uint16), header=header).writeto(path)
    assert read_frame(path).meta.gain == pytest.approx(0.25)
    assert read_frame(path, gain=2.0).meta.gain == 2.0
