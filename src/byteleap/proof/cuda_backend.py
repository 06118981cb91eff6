"""The CUDA challenge path: A and Bᵀ generated on the device (``triton_philox``), multiplied in
the profile's own arithmetic, and every row hashed where it lies (``triton_blake3``). The host
sees 32 bytes per tree node and, at reveal time, the s sampled rows."""

from __future__ import annotations

from typing import TYPE_CHECKING

from byteleap.proof.backends import Product
from byteleap.proof.errors import BackendError
from byteleap.proof.matrices import STREAM_A, STREAM_B
from byteleap.proof.merkle import TreeKeys
from byteleap.proof.messages import ChallengeSpec
from byteleap.proof.profiles import Profile, value_bounds

if TYPE_CHECKING:
    import torch


def input_dtype(profile: Profile) -> torch.dtype:
    import torch

    return {
        Profile.CUDA_F16: torch.float16,
        Profile.CUDA_I8: torch.int8,
        Profile.CPU_F64: torch.float64,
    }[profile]


def multiply(a: torch.Tensor, b: torch.Tensor, profile: Profile) -> torch.Tensor:
    """C = A·B on the device: int32, or the float32 accumulator of an fp16 product (its
    entries are exact integers; the hash kernels convert them word by word)."""
    import torch

    n = a.shape[0]
    if profile is Profile.CUDA_I8:
        if n % 8 == 0 and n > 16:
            # b is a transposed view, i.e. column-major: the fast layout for _int_mm.
            return torch._int_mm(a, b)
        return torch.mm(a.double(), b.double()).to(torch.int32)  # sizes _int_mm refuses
    if profile is Profile.CUDA_F16:
        return torch.mm(a, b, out_dtype=torch.float32)
    return torch.mm(a, b).to(torch.int32)  # float64: exact for every profile


def cuda_product(spec: ChallengeSpec, keys: TreeKeys, device: torch.device) -> Product:
    import torch

    try:
        from byteleap.proof import triton_blake3, triton_philox
    except ImportError as exc:  # torch's CUDA wheels bring triton; a source build may not
        raise BackendError("the CUDA path needs triton (pip install 'byteleap[gpu]')") from exc
    n, seed, profile = spec.n, spec.seed, spec.profile
    bounds = value_bounds(profile, n)
    dtype = input_dtype(profile)
    a = triton_philox.generate(seed, STREAM_A, n, bounds.a, dtype, device)
    b_columns = triton_philox.generate(seed, STREAM_B, n, bounds.b, dtype, device)
    product = multiply(a, b_columns.T, profile)
    del a, b_columns  # up to 2·n² bytes the tree kernels can use
    tree = triton_blake3.tree_of_product(keys, product)

    def row_bytes(i: int) -> bytes:
        return bytes(product[i].to(torch.int32).cpu().numpy().astype("<i4").tobytes())

    return Product(tree, row_bytes, device=str(device))
