"""The packed layout against its specification (docs/packed-format.md)."""

import numpy as np
import pytest

from tmac_ort import packing
from tmac_ort.packing import Geometry, pack, unpack, quantize_rtn


@pytest.mark.parametrize("bits", [1, 2, 3, 4])
@pytest.mark.parametrize("N,K", [(32, 8), (33, 12), (192, 256), (5, 4), (70, 1304)])
@pytest.mark.parametrize("layout_version", [1, 2])
def test_unpack_inverts_pack(rng, bits, N, K, layout_version):
    q = rng.integers(0, 1 << bits, size=(N, K), dtype=np.uint8)
    group = 8 if K % 8 == 0 else K
    packed = pack(q, bits, group, layout_version)
    geo = Geometry(K, N, bits, group)
    tiles_steps = (geo.n_tiles, geo.k_steps) if layout_version == 1 else (geo.n_tiles * geo.k_steps,)
    assert packed.shape == (*tiles_steps, 32 * bits)
    np.testing.assert_array_equal(unpack(packed, bits, K, N, group), q)


@pytest.mark.parametrize("group,chunk_k", [(32, 512), (128, 512), (96, 480), (200, 400), (256, 512), (1024, 512)])
def test_layout_2_stores_k_chunks_of_every_tile(rng, group, chunk_k):
    """docs/packed-format.md, layout 2: chunk by chunk (whole blocks, about 512 k), every
    tile's steps of the chunk; the steps themselves are layout 1's."""
    N, K, bits = 70, 2048, 3
    q = rng.integers(0, 1 << bits, size=(N, K), dtype=np.uint8)
    v1, v2 = pack(q, bits, group, 1), pack(q, bits, group, 2)
    chunk_steps = chunk_k // 8
    rows = []
    for c0 in range(0, K // 8, chunk_steps):
        for t in range(v1.shape[0]):
            rows.extend(v1[t, s] for s in range(c0, min(c0 + chunk_steps, K // 8)))
    np.testing.assert_array_equal(v2, np.stack(rows))


def test_worked_example_from_spec():
    """The 2-bit example of docs/packed-format.md, byte by byte."""
    q = np.zeros((32, 8), dtype=np.uint8)
    q[0, 0] = 1  # channel 0, k 0: plane 0 bit 0 of quad 0
    q[9, 5] = 2  # channel 9, k 5: plane 1, quad 1 (high lane), bit 1
    q[20, 3] = 3  # channel 20, k 3: planes 0 and 1, quad 0, bit 3
    packed = pack(q, 2, layout_version=1)[0, 0]
    assert (pack(q, 2)[0] == packed).all()  # one tile and step: both layouts alike
    expected = np.zeros(64, dtype=np.uint8)
    expected[0] = 0x01  # chunk 0, byte 0: low nibble = (plane 0, channel 0), quad 0
    expected[16 + 3] = 0x20  # chunk 0, high lane byte 3: high nibble = (plane 1, channel 8 + 1)
    expected[32 + 8] = 0x08  # chunk 1, byte 8: low nibble = (plane 0, channel 16 + 4), bit 3
    expected[32 + 9] = 0x08  # chunk 1, byte 9: low nibble = (plane 1, channel 16 + 4), bit 3
    np.testing.assert_array_equal(packed, expected)


def test_odd_top_plane_uses_single_chunk():
    q = np.zeros((32, 8), dtype=np.uint8)
    q[9, 0] = 1  # 1 bit: plane 0 lives in the single chunk; channel 9 = odd byte 3, low nibble
    q[24, 4] = 1  # channel 24 = high nibble of odd byte 1, quad 1 -> high lane
    packed = pack(q, 1, layout_version=1)[0, 0]
    expected = np.zeros(32, dtype=np.uint8)
    expected[3] = 0x01
    expected[16 + 1] = 0x10
    np.testing.assert_array_equal(packed, expected)


def test_pack_rejects_values_that_do_not_fit():
    with pytest.raises(ValueError, match="2\\^2"):
        pack(np.full((4, 8), 4, dtype=np.uint8), 2)


@pytest.mark.parametrize(
    "K,N,bits,group,message",
    [(64, 8, 5, 32, "bits"), (64, 8, 2, 0, "positive"), (60, 8, 2, 12, "multiple of 8"), (1280, 8, 2, 640, "256")],
)
def test_geometry_rejects_bad_shapes(K, N, bits, group, message):
    with pytest.raises(ValueError, match=message):
        Geometry(K, N, bits, group)


@pytest.mark.parametrize("bits", [1, 2, 3, 4])
@pytest.mark.parametrize("symmetric", [True, False])
def test_rtn_quantisation_error_is_bounded_by_half_a_step(rng, bits, symmetric):
    w = rng.standard_normal((16, 256)).astype(np.float32)
    qw = quantize_rtn(w, bits, 64, symmetric=symmetric)
    err = np.abs(qw.dequantize() - w).reshape(16, 4, 64).max(axis=2)
    if symmetric and bits == 1:
        # sign binarisation w = +-mean|w|: the error is | |w| - mean|w| |
        expected = np.abs(np.abs(w) - np.repeat(qw.scales / 2, 64, axis=1)).reshape(16, 4, 64).max(axis=2)
        np.testing.assert_allclose(err, expected, rtol=1e-5, atol=1e-6)
    else:
        # round to nearest: half a step inside the representable range, plus the clipping
        # distance outside it
        full = lambda v: np.repeat(v, 64, axis=1)
        z = full(qw.zero_points.astype(np.float32)) if qw.zero_points is not None else np.float32(1 << (bits - 1))
        s = full(qw.scales)
        ends = np.stack([s * (0 - z), s * ((1 << bits) - 1 - z)])
        lo, hi = ends.min(axis=0), ends.max(axis=0)
        outside = np.maximum(lo - w, 0) + np.maximum(w - hi, 0)
        assert (np.abs(qw.dequantize() - w) <= 0.5 * np.abs(s) + outside + 1e-5).all()


def test_symmetric_rtn_maps_the_largest_magnitude_exactly(rng):
    w = rng.standard_normal((4, 32)).astype(np.float32)
    qw = quantize_rtn(w, 4, 32, symmetric=True)
    deq = qw.dequantize()
    idx = np.abs(w).argmax(axis=1)
    np.testing.assert_allclose(deq[np.arange(4), idx], w[np.arange(4), idx], rtol=1e-6)
    assert qw.zero_points is None and qw.offsets is None


def test_offsets_and_zero_points_are_exclusive():
    with pytest.raises(ValueError, match="not both"):
        packing.QuantizedWeight(np.zeros((2, 32), np.uint8), np.ones((2, 1)), 2, 32,
                                zero_points=np.zeros((2, 1)), offsets=np.zeros((2, 1)))
