"""Windowed max pooling on the vector unit, for float32 values and quantized codes alike.

Max is monotonic, so pooling codes equals pooling their real values. The kernel reads NCHW tensors in
channels-last order (how the array writes conv outputs) and returns an NCHW view of the same layout.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _max_pool_nhwc(x, kh, kw, sh, sw, ph, pw, oh, ow, pad_value):
    n_dim, h_dim, w_dim, c_dim = x.shape
    out = np.empty((n_dim, oh, ow, c_dim), dtype=x.dtype)
    for n in range(n_dim):
        for oy in range(oh):
            for ox in range(ow):
                best = out[n, oy, ox]
                started = False
                padded = False
                for ky in range(kh):
                    iy = oy * sh - ph + ky
                    for kx in range(kw):
                        ix = ox * sw - pw + kx
                        if not (0 <= iy < h_dim and 0 <= ix < w_dim):
                            padded = True
                        elif started:
                            pixel = x[n, iy, ix]
                            for c in range(c_dim):
                                best[c] = max(best[c], pixel[c])
                        else:  # a loop, not ``best[:] = ...``: an array slice assignment compiles numba's error formatting
                            pixel = x[n, iy, ix]
                            for c in range(c_dim):
                                best[c] = pixel[c]
                            started = True
                if padded:  # padding taps count as values equal to pad_value
                    for c in range(c_dim):
                        best[c] = max(best[c], pad_value) if started else pad_value
    return out


def max_pool2d(
    x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int], pad_value: float
) -> np.ndarray:
    """Max over each ``kernel`` window of NCHW ``x`` (floor output size), padding taps equal to ``pad_value``."""
    kh, kw = kernel
    sh, sw = stride
    ph, pw = padding
    oh = (x.shape[2] + 2 * ph - kh) // sh + 1
    ow = (x.shape[3] + 2 * pw - kw) // sw + 1
    nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    return _max_pool_nhwc(nhwc, kh, kw, sh, sw, ph, pw, oh, ow, nhwc.dtype.type(pad_value)).transpose(0, 3, 1, 2)
